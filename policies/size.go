package policies

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the units a size may carry, case-insensitive: decimal (KB = 1000)
// and binary (KiB = 1024), as operators read them on cloud bills and disks.
var sizeUnits = []struct {
	name string
	mult int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseSize parses a byte size: a whole number of bytes ("1048576"), or a whole
// number and a unit ("64MiB", "10 GB"). Units are B, KB, MB, GB, TB (powers of
// 1000) and KiB, MiB, GiB, TiB (powers of 1024), in any case.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size")
	}
	num, mult := t, int64(1)
	lower := strings.ToLower(t)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.name) {
			num, mult = strings.TrimSpace(t[:len(t)-len(u.name)]), u.mult
			break
		}
	}
	if num == "" || strings.IndexFunc(num, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, errors.New("not a size: want a whole number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, errors.New("size is too large")
	}
	return n * mult, nil
}

// FormatSize formats n bytes in the shortest exact form, with a binary or a
// decimal unit ("64MiB", "2TB", "1500B"), so that ParseSize(FormatSize(n)) == n.
func FormatSize(n int64) string {
	best := strconv.FormatInt(n, 10) + "B"
	if n == 0 {
		return best
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n%u.mult == 0 {
			if s := strconv.FormatInt(n/u.mult, 10) + u.name; len(s) < len(best) {
				best = s
			}
		}
	}
	return best
}
