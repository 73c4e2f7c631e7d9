package cost

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		wantName  string
		low, high float64
	}{
		{"bounds with units", "name: branch\nper_device_monthly: {low: 80MB, high: 0.12 GB}\n", "branch", 80e6, 120e6},
		{"bounds as numbers", "per_device_monthly: {low: 1000, high: 2e3}\n", "site", 1000, 2000},
		{"binary units", "per_device_monthly: {low: 1KiB, high: 1MiB}\n", "site", 1024, 1 << 20},
		{"classes", `name: two classes
classes:
  - {name: machine policy poll, per_month: 720, per_month_high: 2880, bytes: 17.4KB, bytes_high: 18.3KB}
  - {name: notification renewal, per_month: 2880, bytes: 12.5 kB}
`, "two classes", 720*17400 + 2880*12500, 2880*18300 + 2880*12500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProfile("/etc/cmg/site.yaml", []byte(tt.doc))
			if err != nil {
				t.Fatalf("ParseProfile: %v", err)
			}
			if p.Name != tt.wantName {
				t.Errorf("name: got %q, want %q", p.Name, tt.wantName)
			}
			checkNear(t, "low", p.Low, tt.low)
			checkNear(t, "high", p.High, tt.high)
		})
	}
}

func TestParseProfileProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // a word of the message
		line int
	}{
		{"empty", "", "empty", 0},
		{"neither form", "name: x\n", "per_device_monthly", 0},
		{"both forms", "per_device_monthly: {low: 1, high: 2}\nclasses: [{name: a, per_month: 1, bytes: 1}]\n", "not both", 2},
		{"low above high", "name: x\nper_device_monthly: {low: 2MB, high: 1MB}\n", "above high", 2},
		{"unknown unit", "per_device_monthly:\n  low: 1 parsec\n  high: 2MB\n", "unknown unit", 2},
		{"negative size", "per_device_monthly: {low: -1, high: 2}\n", "0 or more", 1},
		{"size as a list", "per_device_monthly: {low: [1], high: 2}\n", "a size must be", 1},
		{"unknown key", "per_device_monthly: {low: 1, high: 2, mid: 3}\n", "mid", 1},
		{"class without a name", "classes:\n  - {per_month: 1, bytes: 1}\n", "name", 2},
		{"class high below low", "classes:\n  - {name: a, per_month: 10, per_month_high: 5, bytes: 1}\n", "per_month_high", 2},
		{"class bytes high below low", "classes:\n  - {name: a, per_month: 10, bytes: 2KB, bytes_high: 1KB}\n", "at least bytes", 2},
		{"absurd month", "per_device_monthly: {low: 1, high: 2PB}\n", "unknown unit", 1},
		{"over a petabyte", "per_device_monthly: {low: 1, high: 2000TB}\n", "1 PB", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProfile("p.yaml", []byte(tt.doc))
			var ps *configfile.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want problems", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to mention %q", err, tt.want)
			}
			if tt.line > 0 && ps.List[0].Line != tt.line {
				t.Errorf("got line %d, want %d (%v)", ps.List[0].Line, tt.line, err)
			}
		})
	}
}

func TestLookupProfileFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "branch-offices.yaml")
	if err := os.WriteFile(path, []byte("per_device_monthly: {low: 50MB, high: 70MB}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LookupProfile(path)
	if err != nil || p.Name != "branch-offices" || p.Low != 50e6 || p.High != 70e6 {
		t.Errorf("got %+v, %v; want branch-offices 50e6..70e6", p, err)
	}
	if _, err := LookupProfile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: got %v, want an error naming the file", err)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"1234", 1234, true},
		{"17.4KB", 17400, true},
		{"17.4 kb", 17400, true},
		{" 100 MB ", 100e6, true},
		{"1e3", 1000, true},
		{"1.5GiB", 1.5 * (1 << 30), true},
		{"2TiB", 2 * (1 << 40), true},
		{"3B", 3, true},
		{"", 0, false},
		{"MB", 0, false},
		{"-1MB", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"1e400", 0, false},
		{"1e300TB", 0, false},
		{"12 apples", 0, false},
		{"1.2.3MB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBytes(tt.in)
			if (err == nil) != tt.ok || (tt.ok && float64(got) != tt.want) {
				t.Errorf("got %v, %v; want %v, ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"17.4KB", "1.5 GiB", "0", "-1", "1e308TB", "NaN", "0x10", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBytes(s)
		if err != nil {
			return
		}
		if v := float64(b); !(v >= 0) || math.IsInf(v, 0) {
			t.Fatalf("ParseBytes(%q) = %v: want finite and 0 or more", s, v)
		}
	})
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("name: x\nper_device_monthly: {low: 80MB, high: 120MB}\n"))
	f.Add([]byte("classes:\n  - {name: a, per_month: 720, per_month_high: 2880, bytes: 17.4KB, bytes_high: 18.3KB}\n"))
	f.Add([]byte("classes:\n  - {name: a, per_month: 1e300, bytes: 1e300}\n  - {name: b, per_month: .inf, bytes: 1}\n"))
	f.Add([]byte("per_device_monthly: {low: [1], high: {a: b}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile("p.yaml", data)
		if err != nil {
			return
		}
		if !(p.Low >= 0 && p.Low <= p.High && p.High <= maxProfileBytes) {
			t.Fatalf("accepted a profile with low %v, high %v", p.Low, p.High)
		}
		if _, err := Plan(1000, p.Low, p.High, DefaultPrices()); err != nil {
			t.Fatalf("Plan refused an accepted profile: %v", err)
		}
	})
}
