package cost

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cmg-gateway/cmg/configfile"
)

// TrafficModel is what the planner needs from a traffic profile: the bounds of a
// device's egress in a month, in bytes, both legs. Profile (a file giving the
// bounds or per-class counts and sizes) implements it, and so do the load
// tester's profiles (loadtest/profile), which are the built-in ones.
type TrafficModel interface {
	PerDeviceMonthlyBytes() (low, high float64)
}

// Profile is a traffic profile reduced to what the planner needs.
type Profile struct {
	Name string
	// Low and High bound a device's egress in a month, in bytes.
	Low, High float64
	// Note says where the figures come from.
	Note string
}

// PerDeviceMonthlyBytes implements TrafficModel.
func (p Profile) PerDeviceMonthlyBytes() (low, high float64) { return p.Low, p.High }

// LookupProfile reads the profile file at path (see ParseProfile). The
// built-in profiles (default, dynamic) are the load tester's
// (loadtest/profile), which implement TrafficModel; `cmg cost` looks there
// first.
func LookupProfile(path string) (Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, fmt.Errorf("profile %q is not a readable file: %w", path, err)
	}
	return ParseProfile(path, data)
}

// ParseProfile decodes a profile file (strict YAML; name is the file name for
// messages). Its two forms:
//
//	# the bounds directly
//	name: branch-offices
//	per_device_monthly: {low: 80MB, high: 120MB}
//
//	# or per traffic class: exchanges per device per month × bytes per exchange
//	# (both legs: to the device plus to the site), summed. The _high fields are
//	# optional and default to the low ones.
//	name: my-site
//	classes:
//	  - name: machine policy poll
//	    per_month: 720
//	    per_month_high: 2880
//	    bytes: 17.4KB
//	    bytes_high: 18.3KB
//
// Sizes are a number of bytes or a number with a unit: B, KB, MB, GB, TB
// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func ParseProfile(name string, data []byte) (Profile, error) {
	var f profileFile
	if err := configfile.Decode(name, data, &f); err != nil {
		return Profile{}, err
	}
	p := Profile{Name: f.Name, Note: "from " + name}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	if f.PerDeviceMonthly != nil {
		p.Low, p.High = float64(f.PerDeviceMonthly.Low), float64(f.PerDeviceMonthly.High)
		return p, nil
	}
	for _, c := range f.Classes {
		low, high := c.bounds()
		p.Low += low
		p.High += high
	}
	return p, nil
}

type profileFile struct {
	Name             string         `yaml:"name"`
	PerDeviceMonthly *bytesBounds   `yaml:"per_device_monthly"`
	Classes          []trafficClass `yaml:"classes"`
}

type bytesBounds struct {
	Low  Bytes `yaml:"low"`
	High Bytes `yaml:"high"`
}

type trafficClass struct {
	Name         string   `yaml:"name"`
	PerMonth     float64  `yaml:"per_month"`
	PerMonthHigh *float64 `yaml:"per_month_high"`
	Bytes        Bytes    `yaml:"bytes"`
	BytesHigh    *Bytes   `yaml:"bytes_high"`
}

func (c trafficClass) bounds() (low, high float64) {
	n, nh := c.PerMonth, c.PerMonth
	if c.PerMonthHigh != nil {
		nh = *c.PerMonthHigh
	}
	b, bh := float64(c.Bytes), float64(c.Bytes)
	if c.BytesHigh != nil {
		bh = float64(*c.BytesHigh)
	}
	return n * b, nh * bh
}

// maxProfileBytes bounds a device's month (1 PB): beyond it a figure is a typo.
const maxProfileBytes = 1e15

func (f *profileFile) Validate() error {
	var ps configfile.Problems
	switch {
	case f.PerDeviceMonthly != nil && len(f.Classes) > 0:
		ps.Addf("classes", "give per_device_monthly or classes, not both")
	case f.PerDeviceMonthly == nil && len(f.Classes) == 0:
		ps.Addf("", "give per_device_monthly {low, high} or a list of classes")
	case f.PerDeviceMonthly != nil:
		checkBounds(&ps, "per_device_monthly", float64(f.PerDeviceMonthly.Low), float64(f.PerDeviceMonthly.High))
	}
	var low, high float64
	for i, c := range f.Classes {
		path := "classes[" + strconv.Itoa(i) + "]"
		if c.Name == "" {
			ps.Addf(path+".name", "every class needs a name")
		}
		l, h := c.bounds()
		if !(c.PerMonth >= 0 && c.PerMonth <= maxProfileBytes) || (c.PerMonthHigh != nil && !(*c.PerMonthHigh >= c.PerMonth && *c.PerMonthHigh <= maxProfileBytes)) {
			ps.Addf(path+".per_month", "counts must be finite and 0 or more, per_month_high at least per_month")
		}
		if c.BytesHigh != nil && *c.BytesHigh < c.Bytes {
			ps.Addf(path+".bytes_high", "must be at least bytes")
		}
		low, high = low+l, high+h
	}
	if len(f.Classes) > 0 && ps.Err() == nil {
		checkBounds(&ps, "classes", low, high)
	}
	return ps.Err()
}

func checkBounds(ps *configfile.Problems, path string, low, high float64) {
	switch {
	case !(low >= 0 && high <= maxProfileBytes):
		ps.Addf(path, "a device's month must be between 0 and 1 PB")
	case low > high:
		ps.Addf(path, "low (%v bytes) is above high (%v bytes)", low, high)
	}
}

// Bytes is a size in bytes that YAML may give as a number or as a number with a
// unit ("17.4KB", "1.5 GiB").
type Bytes float64

var byteUnits = map[string]float64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseBytes parses a size: a non-negative number, optionally followed by one of
// the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (any case, space allowed).
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '.' || r == '_' || r == 'e' || r == 'E' || r == '+' || r == '-')
	})
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v >= 0) || math.IsInf(v*mult, 0) {
		return 0, fmt.Errorf("size %q: want a finite number of 0 or more, then an optional unit", s)
	}
	return Bytes(v * mult), nil
}

// UnmarshalYAML reads a scalar size, reporting a bad one with its line.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a size must be a number or a string like 17.4KB", n.Line)}}
	}
	v, err := ParseBytes(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*b = v
	return nil
}
