package profile

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Month is the model's month: 30 days (DESIGN section 11).
const Month = 30 * 24 * time.Hour

// Duration is a time.Duration that YAML and flags may also give in days ("7d")
// or months ("1mo", "month": 30 days).
type Duration time.Duration

// ParseDuration parses a Go duration ("90s", "1h30m"), a number of days ("7d",
// "0.5d"), a number of 30-day months ("1mo", "2mo") or the word "month".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "month") {
		return Month, nil
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"mo", Month}, {"d", 24 * time.Hour}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 || v > 1e6 {
				return 0, fmt.Errorf("duration %q: want a number of 0 or more before %q", s, u.suffix)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration (90s, 1h30m), days (7d) or months (1mo)", s)
	}
	return d, nil
}

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a duration must be a string like 60m or 7d", n.Line)}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as Go prints it.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
