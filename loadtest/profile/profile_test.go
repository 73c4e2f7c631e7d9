package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"0.5d", 12 * time.Hour, true},
		{"1mo", Month, true},
		{"month", Month, true},
		{"2mo", 2 * Month, true},
		{"", 0, false},
		{"d", 0, false},
		{"-1d", 0, false},
		{"7 days", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("got %v, %v; want %v, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, p *Profile)
	}{
		{"base with overrides", `base: default
name: branch
habits: cmg
auth: certificate
classes:
  - {name: poll, kind: machine_policy, interval: 30m, exchanges: 1, request: 5.8KB, response: 2.6KB, jitter: 0.2}
`, func(t *testing.T, p *Profile) {
			if p.Name != "branch" || p.Habits != CMG || p.Auth != AuthCertificate || len(p.Classes) != 1 {
				t.Fatalf("got %+v", p)
			}
			if got := p.Classes[0].Monthly(); got != 1440 {
				t.Errorf("monthly: got %v, want 1440 (every 30 min)", got)
			}
			if p.Fixed.TLSFullHandshake != 6000 {
				t.Errorf("fixed costs: got %v, want the base's 6000", p.Fixed.TLSFullHandshake)
			}
			// certificate clients send no bearer: 1440 x (2.5 - 1.6 + 0.1 + 5.8 KB) to the site.
			if got := p.Model(CMG).ToSite; !near(got, 1440*6800, 1e-6) {
				t.Errorf("model to site: got %v, want %v", got, 1440*6800)
			}
		}},
		{"base only changes a field", "base: dynamic\nfixed: {tls_full_handshake: 4KB}\n", func(t *testing.T, p *Profile) {
			if p.Name != "dynamic" || p.Fixed.TLSFullHandshake != 4000 || p.Fixed.RequestHeaders != 2500 {
				t.Errorf("got %+v", p.Fixed)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, p)
		})
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"unknown key", "base: default\nhabbits: cmg\n", []string{"habbits"}},
		{"unknown base", "base: weekly\n", []string{`base "weekly"`}},
		{"every problem at once", `base: default
habits: sometimes
auth: password
classes:
  - {name: a, kind: teleport, interval: 1h, per_month: 5, exchanges: 1, jitter: 2}
  - {name: a, kind: sup_scan, per_month: 5, exchanges: 1, follows: nobody}
  - {name: b, kind: sup_metadata, per_month: 1, exchanges: 2}
`, []string{"habits", "auth", `unknown kind "teleport"`, "interval or per_month", "jitter", `"a" is also classes[0]`,
			"sup_scan takes 3 to 50 exchanges", `no class is named "nobody"`, "items >= 1"}},
		{"no classes", "name: x\nhabits: cmg\nauth: token\n", []string{"classes: at least one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.doc))
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var ps *configfile.Problems
			if strings.Contains(tt.name, "every") && (!errors.As(err, &ps) || ps.List[0].Line == 0) {
				t.Errorf("want problems with lines, got %v", err)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	for _, n := range Builtins() {
		p, err := Lookup(n)
		if err != nil || p.Name != n {
			t.Errorf("%s: got %v, %v", n, p, err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("base: default\nname: mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Lookup(path); err != nil || p.Name != "mine" {
		t.Errorf("file: got %v, %v", p, err)
	}
	if _, err := Lookup(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "default, dynamic") {
		t.Errorf("missing: got %v, want the built-in names", err)
	}
	// A built-in is a copy: changing it changes no other run's profile.
	a, _ := Builtin("default")
	a.Classes[0].PerMonth = 1
	if b, _ := Builtin("default"); b.Classes[0].PerMonth == 1 {
		t.Error("Builtin returned a shared profile")
	}
}

func TestModelHabits(t *testing.T) {
	p, _ := Builtin("default")
	orig, cmg := p.Model(Original), p.Model(CMG)
	if _, ok := orig.Class("notification_channel"); ok {
		t.Error("the original habits have no notification channel")
	}
	if _, ok := cmg.Class("notification_renewal"); ok {
		t.Error("cmg's habits have no notification renewals")
	}
	ch, _ := cmg.Class("notification_channel")
	if ch.Simulated {
		t.Error("the notification channel is not simulated yet")
	}
	low, high := p.PerDeviceMonthlyBytes()
	if low != cmg.Total || high != orig.Total || !(low < high) {
		t.Errorf("PerDeviceMonthlyBytes: got %v..%v, want %v..%v", low, high, cmg.Total, orig.Total)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("base: default\n"))
	f.Add([]byte("base: dynamic\nhabits: cmg\nclasses: [{name: a, kind: ddr, per_month: 3, exchanges: 1, request: 1KB}]\n"))
	f.Add([]byte("name: x\nhabits: original\nauth: token\noriginal_habits: {max_tls_version: \"1.2\", server_chain: any}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a profile that does not validate: %v", err)
		}
		m := p.Model(p.Habits)
		if !(m.Total >= 0) {
			t.Fatalf("model total %v", m.Total)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "7d", "1mo", "month", "0.5d", "-3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && strings.HasSuffix(s, "d") && d < 0 {
			t.Fatalf("%q gave %v", s, d)
		}
	})
}
