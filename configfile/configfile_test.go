package configfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Name    string        `yaml:"name"`
	Timeout time.Duration `yaml:"timeout"`
	Limit   Size          `yaml:"limit"`
	Sites   []testSite    `yaml:"sites"`
}

type testSite struct {
	Name  string `yaml:"name"`
	Roles []struct {
		ID string `yaml:"id"`
	} `yaml:"roles"`
}

func (c *testConfig) Validate() error {
	var ps Problems
	if c.Name == "" {
		ps.Addf("name", "is required")
	}
	for i, s := range c.Sites {
		if s.Name == "bad" {
			ps.Addf("sites["+itoa(i)+"].name", "must not be bad")
		}
		for j, r := range s.Roles {
			if r.ID == "x" {
				ps.Addf("sites["+itoa(i)+"].roles["+itoa(j)+"].id", "must be digits")
			}
		}
	}
	return ps.Err()
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestDecodeReportsEveryProblemWithItsLine(t *testing.T) {
	doc := `name: ""
timeout: 5s
sites:
  - name: good
    roles:
      - id: "1"
      - id: x
  - name: bad
`
	err := Decode("test.yaml", []byte(doc), &testConfig{})
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want *Problems", err)
	}
	want := map[string]int{"name": 1, "sites[0].roles[1].id": 7, "sites[1].name": 8}
	if len(ps.List) != len(want) {
		t.Fatalf("got %d problems (%v), want %d", len(ps.List), err, len(want))
	}
	for _, p := range ps.List {
		if want[p.Path] != p.Line {
			t.Errorf("problem %q on line %d, want line %d", p.Path, p.Line, want[p.Path])
		}
	}
	if !strings.Contains(err.Error(), "test.yaml: 3 problems") {
		t.Errorf("message %q does not name the file and count", err)
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"unknown key", "name: a\nnmae: b\n", "line 2: field nmae not found"},
		{"bad duration", "name: a\ntimeout: 5\n", "line 2"},
		{"bad size", "name: a\nlimit: lots\n", "not a size"},
		{"empty", "", "the file is empty"},
		{"two documents", "name: a\n---\nname: b\n", "only one YAML document"},
		{"syntax", "name: [a\n", "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode("f.yaml", []byte(tt.doc), &testConfig{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeKeepsDefaults(t *testing.T) {
	cfg := testConfig{Name: "default", Timeout: time.Minute}
	if err := Decode("f.yaml", []byte("limit: 64MiB\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "default" || cfg.Timeout != time.Minute || cfg.Limit != 64<<20 {
		t.Errorf("got %+v, want defaults kept and limit 64MiB", cfg)
	}
}

func TestLoadMissingFile(t *testing.T) {
	err := Load(filepath.Join(t.TempDir(), "nope.yaml"), &testConfig{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		bad  bool
	}{
		{"512", 512, false},
		{"64KiB", 64 << 10, false},
		{"10MB", 10e6, false},
		{"1.5GiB", 3 << 29, false},
		{"2 tb", 2e12, false},
		{"-1", 0, true},
		{"MiB", 0, true},
		{"10 parsecs", 0, true},
		{"1e3", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
	for _, s := range []Size{0, 512, 64 << 10, 3 << 30, 1000} {
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Errorf("%d -> %q -> %d, %v", s, s.String(), back, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "64KiB", "1.5GiB", "10 MB", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseSize(s)
		if err == nil && z < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, z)
		}
	})
}
