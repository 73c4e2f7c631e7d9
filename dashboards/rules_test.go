package dashboards

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/cmg-gateway/cmg/metrics/cost"
)

// tool finds a binary that scripts/install-test-deps installs.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): run scripts/install-test-deps (Debian package prometheus)", name, err)
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	runTool(t, "promtool", append([]string{"check", "rules"}, ruleFiles...)...)
	runTool(t, "promtool", "check", "config", "prometheus/prometheus.example.yml")
}

func TestPromtoolTestRules(t *testing.T) {
	files, err := filepath.Glob("prometheus/tests/*.test.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool test in prometheus/tests (%v)", err)
	}
	runTool(t, "promtool", append([]string{"test", "rules"}, files...)...)
}

// unitTests is what the promtool test files cover.
type unitTests struct {
	Tests []struct {
		Name           string `yaml:"name"`
		PromQLExprTest []struct {
			Expr       string `yaml:"expr"`
			ExpSamples []any  `yaml:"exp_samples"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryRuleIsUnitTested: each alert is tested both firing and not firing, and
// each recording rule's output is checked by a promql_expr_test with samples.
func TestEveryRuleIsUnitTested(t *testing.T) {
	files, _ := filepath.Glob("prometheus/tests/*.test.yaml")
	fires, quiet := map[string]bool{}, map[string]bool{}
	checked := map[string]bool{}
	rules := loadRules(t)
	rec := recorded(rules)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ut unitTests
		if err := yaml.Unmarshal(data, &ut); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range ut.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
			for _, e := range tc.PromQLExprTest {
				info, err := analyze(e.Expr)
				if err != nil {
					t.Errorf("%s: %q: %v", f, e.Expr, err)
					continue
				}
				for _, m := range info.metrics() {
					if _, ok := rec[m]; ok && len(e.ExpSamples) > 0 {
						checked[m] = true
					}
				}
			}
		}
	}
	for _, r := range rules {
		switch {
		case r.Alert != "" && !fires[r.Alert]:
			t.Errorf("alert %s: no promtool test shows it firing", r.Alert)
		case r.Alert != "" && !quiet[r.Alert]:
			t.Errorf("alert %s: no promtool test shows it not firing", r.Alert)
		case r.Record != "" && !checked[r.Record]:
			t.Errorf("recording rule %s: no promtool test checks its samples", r.Record)
		}
	}
}

// TestAlertsHaveRunbooks: every alert has a severity, a summary, a description and
// a runbook_url whose anchor is a section of README.md.
func TestAlertsHaveRunbooks(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,4} (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	const base = "https://github.com/cmg-gateway/cmg/blob/main/dashboards/README.md#"
	n := 0
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		n++
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if len(r.Annotations) != 3 {
			t.Errorf("%s: annotations %v, want exactly summary, description and runbook_url", r.Alert, sortedKeys(r.Annotations))
		}
		want := base + strings.ToLower(r.Alert)
		if got := r.Annotations["runbook_url"]; got != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
		}
		if !anchors[strings.ToLower(r.Alert)] {
			t.Errorf("%s: README.md has no runbook section titled %s", r.Alert, r.Alert)
		}
	}
	if n < 13 {
		t.Errorf("got %d alerts, want the 13 of the issue and README", n)
	}
}

// githubAnchor is the anchor GitHub gives a heading.
func githubAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestRecordingRulesMatchCostModel: the service totals the recording rules make
// from what the real cost collector of each instance exports are what `cmg cost`
// plans for the same service (cost.Plan), for services that fit in one egress
// tier and across tiers. Each instance takes an even share of the service's
// devices and egress, as the load balancer gives it.
func TestRecordingRulesMatchCostModel(t *testing.T) {
	tests := []struct {
		name      string
		devices   int64
		perDevice float64 // bytes a month
		instances int
	}{
		{"one instance, within the second tier", 5000, 200e6, 1},
		{"three instances, 15,000 devices at 288 MB", 15000, 288e6, 3},
		{"sixteen instances, 96,000 devices at 1.6 GB: every tier", 96000, 1600e6, 16},
	}
	dir := t.TempDir()
	var cases []string
	for _, tc := range tests {
		prices := cost.DefaultPrices()
		prices.Instances = tc.instances
		plan, err := cost.Plan(tc.devices, tc.perDevice, tc.perDevice, prices)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Instances != tc.instances {
			t.Fatalf("%s: the plan has %d instances, want %d", tc.name, plan.Instances, tc.instances)
		}
		var series []string
		for i := 0; i < tc.instances; i++ {
			share := plan.Low.MonthlyEgressBytes / float64(tc.instances)
			series = append(series, collectInstance(t, prices, share, fmt.Sprintf("gw-%d:9100", i))...)
		}
		want := map[string]float64{
			`job:cmg_cost_projected_monthly_egress_bytes:sum`:                        plan.Low.MonthlyEgressBytes,
			`job:cmg_cost_projected_monthly:sum{component="egress",currency="USD"}`:  plan.Low.Egress,
			`job:cmg_cost_projected_monthly:sum{component="compute",currency="USD"}`: plan.Low.Compute,
			`job:cmg_cost_projected_monthly:sum{component="total",currency="USD"}`:   plan.Low.Total,
		}
		var b strings.Builder
		fmt.Fprintf(&b, "  - name: %q\n    interval: 1m\n    input_series:\n", tc.name)
		for _, s := range series {
			fmt.Fprintf(&b, "      - series: '%s'\n        values: '%sx5'\n", s[:strings.LastIndexByte(s, ' ')], s[strings.LastIndexByte(s, ' ')+1:])
		}
		b.WriteString("    promql_expr_test:\n")
		for _, sel := range sortedKeys(want) {
			// promtool compares exactly; the sums may differ from the plan in the
			// last bits, so compare within a relative 1e-9.
			fmt.Fprintf(&b, "      - expr: 'abs(%s - %s) <= bool %s'\n        eval_time: 2m\n        exp_samples:\n          - labels: '{job=\"cmg-gateway\"%s}'\n            value: 1\n",
				sel, promFloat(want[sel]), promFloat(max(1e-9*want[sel], 1e-9)), labelsOf(sel))
		}
		cases = append(cases, b.String())
	}
	abs, err := filepath.Abs("prometheus/cmg-recording.rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	test := fmt.Sprintf("rule_files:\n  - %s\nevaluation_interval: 1m\ntests:\n%s", abs, strings.Join(cases, ""))
	path := filepath.Join(dir, "cost.test.yaml")
	if err := os.WriteFile(path, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool(t, "promtool"), "test", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("recording rules disagree with cost.Plan: %v\n%s\ntest file:\n%s", err, out, test)
	}
}

// collectInstance runs one instance's real cost meter and collector with the given
// monthly egress projection and returns its cost series as promtool input lines
// ("name{labels} value").
func collectInstance(t *testing.T, prices cost.Prices, projected float64, instance string) []string {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	cfg := cost.DefaultConfig()
	cfg.Prices = prices
	m, err := cost.New(cfg, cost.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// Under an hour of running, the rate is the total over the time since the
	// start: a projection of bytes x 720 after one hour.
	m.AddEgress(uint64(projected / cost.HoursPerMonth))
	now = start.Add(time.Hour)
	reg := prometheus.NewRegistry()
	if _, err := cost.NewCollector(reg, m); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "cmg_cost_projected_monthly") {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := []string{`job="cmg-gateway"`, fmt.Sprintf("instance=%q", instance)}
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out = append(out, fmt.Sprintf("%s{%s} %s", f.GetName(), strings.Join(labels, ", "), strconv.FormatFloat(mt.GetGauge().GetValue(), 'f', -1, 64)))
		}
	}
	if len(out) != 4 {
		t.Fatalf("the collector exported %d cost series, want 4 (projected bytes and 3 components): %q", len(out), out)
	}
	return out
}

// labelsOf turns `name{a="b"}` into `, a="b"` for a promtool labels line.
func labelsOf(sel string) string {
	i := strings.IndexByte(sel, '{')
	if i < 0 {
		return ""
	}
	inner := sel[i+1 : len(sel)-1]
	parts := strings.Split(inner, ",")
	slices.Sort(parts)
	return ", " + strings.Join(parts, ", ")
}

// promFloat writes v as PromQL and promtool's series notation read it.
func promFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
