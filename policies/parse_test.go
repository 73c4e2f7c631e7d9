package policies

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/configfile"
)

func problemsOf(t *testing.T, err error) []configfile.Problem {
	t.Helper()
	var ps *configfile.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got error %v (%T), want *configfile.Problems", err, err)
	}
	return ps.List
}

// TestBrokenFileReportsEveryProblem checks that one pass over a file with many
// mistakes reports each of them on its own line.
func TestBrokenFileReportsEveryProblem(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "broken.yaml"))
	got := problemsOf(t, err)
	want := []struct {
		line int
		has  string
	}{
		{1, "unsupported version 2"},
		{2, `unknown action "maybe"`},
		{3, `unknown key "colour"`},
		{7, `bad CIDR "10.0.0.300/8"`},
		{7, `host bits are set (did you mean 10.0.0.0/8?)`},
		{11, "bad regular expression"},
		{16, `unknown action "permit"`},
		{17, `duplicate rule name "bad-action" (first used on line 13)`},
		{19, `unknown auth method "kerberos"`},
		{20, `unknown role kind "domain_controller"`},
		{21, `unknown address family "ipv5"`},
		{22, `path prefix "CCM_Proxy_MutualAuth" must start with /`},
		{24, "not a size"},
		{25, "must be between 1 and 1000000, not 0"},
		{27, "must be more than 0"},
		{28, `not a whole number: "2.5"`},
		{32, "an empty list matches nothing"},
		{34, "a deny rule cannot have concurrency"},
		{35, `unknown key "extra"`},
		{36, `rule name "default" is reserved`},
		{36, "missing action"},
		{42, `rule "never-reached" is never reached: rule "everything-else" (line 39)`},
		{46, `key "action" is given twice (first on line 45)`},
		{48, "egress_budget.bytes: not a size"},
		{49, `not a duration (like 336h): "14d"`},
		{50, "not 1.5"},
		{51, "not 0"},
		{52, `must be true or false, not "maybe"`},
	}
	if len(got) != len(want) {
		var b strings.Builder
		for _, p := range got {
			b.WriteString("\n  " + p.String())
		}
		t.Fatalf("got %d problems, want %d:%s", len(got), len(want), b.String())
	}
	for i, w := range want {
		if got[i].Line != w.line || !strings.Contains(got[i].String(), w.has) {
			t.Errorf("problem %d: got %q, want line %d containing %q", i, got[i].String(), w.line, w.has)
		}
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		has  string
	}{
		{"empty file", "", 0, "the file is empty"},
		{"only a comment", "# nothing\n", 0, "the file is empty"},
		// yaml.v3 reports some syntax errors a line early; the line is its own.
		{"syntax error", "version: 1\ndefault: [deny\n", 1, "did not find expected"},
		{"two documents", "version: 1\ndefault: deny\n---\nversion: 1\n", 3, "only one YAML document"},
		{"not a mapping", "- a\n- b\n", 1, "the policy must be a mapping"},
		{"missing version", "default: deny\n", 1, "missing version"},
		{"missing default", "version: 1\n", 1, "missing default"},
		{"version not a number", "version: one\ndefault: deny\n", 1, `not a whole number: "one"`},
		{"rules not a list", "version: 1\ndefault: deny\nrules: {a: b}\n", 3, "must be a list of rules"},
		{"rule not a mapping", "version: 1\ndefault: deny\nrules:\n  - allow\n", 4, "rules[0] must be a mapping"},
		{"missing name", "version: 1\ndefault: deny\nrules:\n  - {match: {}, action: deny}\n", 4, "missing name"},
		{"bad name", "version: 1\ndefault: deny\nrules:\n  - {name: 'has space', match: {}, action: deny}\n", 4, "rule name \"has space\" must be"},
		{"long name", "version: 1\ndefault: deny\nrules:\n  - {name: " + strings.Repeat("a", 65) + ", match: {}, action: deny}\n", 4, "must be 1 to 64"},
		{"missing match", "version: 1\ndefault: deny\nrules:\n  - {name: a, action: deny}\n", 4, "missing match"},
		{"match is a list", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: [auth]\n    action: deny\n", 5, "rules[0].match must be a mapping"},
		{"null value", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match:\n      auth:\n    action: deny\n", 6, "must be a value or a list of values, not nothing"},
		{"nested list", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match:\n      role: [[management_point]]\n    action: deny\n", 6, "role[0]: must be a single value, not a list"},
		{"empty pattern", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {subject: ''}\n    action: deny\n", 5, "an empty pattern"},
		{"claims not a mapping", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {claims: [tid]}\n    action: deny\n", 5, "claim names to allowed values"},
		{"empty claims", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {claims: {}}\n    action: deny\n", 5, "no claims"},
		{"claim twice", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match:\n      claims:\n        tid: a\n        tid: b\n    action: deny\n", 8, `claim "tid" is given twice (first on line 7)`},
		{"merge key", "version: 1\ndefault: deny\nx: &x {auth: oidc}\nrules:\n  - name: a\n    match:\n      <<: *x\n    action: deny\n", 7, "merge keys"},
		{"zoned address", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {source: 'fe80::1%eth0'}\n    action: deny\n", 5, "bad CIDR"},
		{"short mapped prefix", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {source: '::ffff:0:0/64'}\n    action: deny\n", 5, "host bits are set"},
		{"rate not a number", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {}\n    action: allow\n    rate_limit: {requests_per_second: fast}\n", 7, `not a number: "fast"`},
		{"rate is infinite", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {}\n    action: allow\n    rate_limit: {requests_per_second: .inf}\n", 7, `not a number`},
		{"rate missing", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {}\n    action: allow\n    rate_limit: {burst: 3}\n", 7, "missing requests_per_second"},
		{"zero body limit", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {}\n    action: allow\n    body_limit: 0\n", 7, "more than 0 bytes"},
		{"huge body limit", "version: 1\ndefault: deny\nrules:\n  - name: a\n    match: {}\n    action: allow\n    body_limit: 99999999999TiB\n", 7, "too large"},
		{"too many rules", "version: 1\ndefault: deny\nrules:\n" + manyRules(MaxRules+1), 4, "257 rules: at most 256"},
		{"budget without bytes", "version: 1\ndefault: deny\negress_budget: {window: 24h}\n", 3, "missing bytes"},
		{"budget window too short", "version: 1\ndefault: deny\negress_budget: {bytes: 1GB, window: 10m}\n", 3, "between 1h and 8784h"},
		{"warning above critical", "version: 1\ndefault: deny\negress_budget:\n  bytes: 1GB\n  warning: 0.95\n", 5, "warning (0.95) must be below critical (0.9)"},
		{"budget not a mapping", "version: 1\ndefault: deny\negress_budget: 10GB\n", 3, "egress_budget must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check("p.yaml", []byte(tt.src))
			ps := problemsOf(t, err)
			for _, p := range ps {
				if p.Line == tt.line && strings.Contains(p.String(), tt.has) {
					return
				}
			}
			t.Errorf("got %v, want a problem on line %d containing %q", err, tt.line, tt.has)
		})
	}
}

func manyRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%d, match: {auth: oidc}, action: deny}\n", i)
	}
	return b.String()
}

func TestLoadLimits(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want a not-exist error", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("version: 1\ndefault: deny\n#"+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than 1MiB") {
		t.Errorf("big file: got %v, want larger than 1MiB", err)
	}
}

func TestBudgetSection(t *testing.T) {
	p := mustParse(t, "version: 1\ndefault: deny\negress_budget:\n  bytes: 10GiB\n")
	got, ok := p.Budget()
	want := BudgetConfig{Bytes: 10 << 30, Window: DefaultBudgetWindow, Warning: 0.5, Critical: 0.9}
	if !ok || got != want {
		t.Errorf("got %+v %v, want %+v true", got, ok, want)
	}
	p = mustParse(t, "version: 1\ndefault: deny\negress_budget: {bytes: 1TB, window: 24h, warning: 0.7, critical: 1, stop_on_critical: true}\n")
	got, _ = p.Budget()
	want = BudgetConfig{Bytes: 1e12, Window: 24 * 3600e9, Warning: 0.7, Critical: 1, StopOnCritical: true}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, ok := mustParse(t, "version: 1\ndefault: deny\n").Budget(); ok {
		t.Error("a file without egress_budget has a budget")
	}
}

// TestExamples keeps every example policy valid.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("examples", "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v, want at least 3 files", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Default() != Deny {
				t.Errorf("default %s, want deny: examples show a closed policy", p.Default())
			}
			if _, ok := p.Budget(); !ok {
				t.Error("no egress_budget")
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1048576", want: 1 << 20},
		{in: "64MiB", want: 64 << 20},
		{in: "64mib", want: 64 << 20},
		{in: "10 GB", want: 10e9},
		{in: "1kb", want: 1000},
		{in: "2TiB", want: 2 << 40},
		{in: "7B", want: 7},
		{in: "0", want: 0},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1MiB", bad: true},
		{in: "1.5GiB", bad: true},
		{in: "10 mebibytes", bad: true},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "9223372036854775808", bad: true},
		{in: "8388608TiB", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.bad != (err != nil) || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
	for n, want := range map[int64]string{0: "0B", 1: "1B", 1000: "1KB", 1024: "1KiB", 1500: "1500B", 64 << 20: "64MiB", 2e12: "2TB", 3 << 40: "3TiB", 1<<63 - 1: "9223372036854775807B"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}

		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d)=%q) = %d, %v", n, FormatSize(n), got, err)
		}
	}
}

// FuzzParse checks that no input makes the policy parser panic, and that a file
// it accepts decides and explains consistently.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("examples", "*.yaml"))
	files = append(files, filepath.Join("testdata", "broken.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(testPolicy))
	f.Add([]byte("version: 1\ndefault: allow\nrules:\n  - {name: a, match: {source: &n [10.0.0.0/8]}, action: deny}\n  - {name: b, match: {source: *n}, action: allow}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ps *configfile.Problems
			if !errors.As(err, &ps) || len(ps.List) == 0 {
				t.Fatalf("error %v is not a non-empty *configfile.Problems", err)
			}
			return
		}
		for _, req := range benchRequests() {
			if d, e := p.Decide(req), p.Explain(req).Decision; d != e {
				t.Fatalf("Decide %+v, Explain %+v", d, e)
			}
		}
	})
}
