package dashboards

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// promServer is a real Prometheus (Debian's) run for one test.
type promServer struct {
	url     string
	started time.Time
}

// scrapeInterval is the test Prometheus's scrape and rule evaluation interval;
// Grafana's $__rate_interval is four times it.
const scrapeInterval = time.Second

// startPrometheus runs Prometheus with prometheus/prometheus.example.yml, its
// targets replaced by the demo's admin listeners and its intervals by
// scrapeInterval, and the rule files loaded. It is stopped when the test ends.
func startPrometheus(t *testing.T, bin string, gateways, connectors []string) *promServer {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile("prometheus/prometheus.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": scrapeInterval.String(), "evaluation_interval": scrapeInterval.String()}
	var rules []string
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, abs)
	}
	cfg["rule_files"] = rules
	hosts := func(urls []string) []string {
		var out []string
		for _, u := range urls {
			out = append(out, strings.TrimPrefix(u, "http://"))
		}
		return out
	}
	scrapes, _ := cfg["scrape_configs"].([]any)
	if len(scrapes) != 2 {
		t.Fatalf("prometheus.example.yml: got %d scrape configs, want 2 (gateways, connectors)", len(scrapes))
	}
	for i, targets := range [][]string{hosts(gateways), hosts(connectors)} {
		sc := scrapes[i].(map[string]any)
		sc["static_configs"] = []any{map[string]any{"targets": targets}}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", log)
		}
	})
	p := &promServer{url: "http://" + addr, started: time.Now()}
	waitUntil(t, "Prometheus ready", 30*time.Second, func() bool {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus exited: %v\n%s", err, log)
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// Ready is not scraping: discovery hands the targets over a few seconds
	// later. Wait for a successful scrape of each, so what happens next is seen.
	want := len(gateways) + len(connectors)
	waitUntil(t, "Prometheus scraping every target", 30*time.Second, func() bool {
		var res struct {
			Result []struct{} `json:"result"`
		}
		err := p.get("/api/v1/query", url.Values{"query": {"up == 1"}}, &res)
		return err == nil && len(res.Result) == want
	})
	return p
}

// apiError is an error answer of the Prometheus HTTP API; badData is a query
// Prometheus cannot parse or evaluate.
type apiError struct {
	typ, msg string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func (p *promServer) get(path string, q url.Values, v any) error {
	resp, err := http.Get(p.url + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return &apiError{body.ErrorType, body.Error}
	}
	return json.Unmarshal(body.Data, v)
}

// series counts the series a query returns: instant at now, or over the range
// since Prometheus started with a one-interval step (as Grafana asks).
func (p *promServer) series(expr string, instant bool) (int, error) {
	var res struct {
		Result []json.RawMessage `json:"result"`
	}
	now := time.Now()
	q := url.Values{"query": {expr}}
	if instant {
		q.Set("time", fmt.Sprint(now.Unix()))
		if err := p.get("/api/v1/query", q, &res); err != nil {
			return 0, err
		}
		return len(res.Result), nil
	}
	q.Set("start", fmt.Sprint(p.started.Unix()))
	q.Set("end", fmt.Sprint(now.Unix()))
	q.Set("step", fmt.Sprint(scrapeInterval.Seconds()))
	if err := p.get("/api/v1/query_range", q, &res); err != nil {
		return 0, err
	}
	return len(res.Result), nil
}

// labelValues answers a label_values(selector, label) variable query.
func (p *promServer) labelValues(selector, label string) ([]string, error) {
	var vals []string
	q := url.Values{"match[]": {selector}, "start": {fmt.Sprint(p.started.Unix())}, "end": {fmt.Sprint(time.Now().Unix())}}
	err := p.get("/api/v1/label/"+label+"/values", q, &vals)
	sort.Strings(vals)
	return vals, err
}

// inputs are the exported metrics behind name: itself, or what the recording
// rule that makes it reads, recursively.
func inputs(name string, rec map[string]string) []string {
	expr, ok := rec[name]
	if !ok {
		return []string{name}
	}
	info, err := analyze(expr)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range info.metrics() {
		out = append(out, inputs(m, rec)...)
	}
	return out
}

// pendingIn lists the pending metrics an expression depends on.
func pendingIn(info exprInfo, rec map[string]string) []string {
	var out []string
	for _, m := range info.metrics() {
		for _, in := range inputs(m, rec) {
			if _, ok := pendingMetrics[in]; ok && !slices.Contains(out, in) {
				out = append(out, in)
			}
		}
	}
	return out
}

// targetLabels are the labels Prometheus gives every scraped series.
var targetLabels = map[string]bool{"instance": true, "job": true}

// checkNames: every metric name the files use is on /metrics (or recorded, or
// `up`), with every label matched or grouped on; a pending name is reported, and
// a pending name that is exported after all fails.
func checkNames(t *testing.T, exprs []expression, rec map[string]string, inv inventory) {
	selectors := 0
	for _, e := range exprs {
		info, _ := analyze(e.expr)
		selectors += len(info.selectors)
	}
	if selectors < 100 {
		t.Errorf("found only %d metric selectors in the dashboards and rules: the extraction is broken", selectors)
	}
	problems, pending := nameProblems(exprs, rec, inv, pendingMetrics)
	for _, p := range problems {
		t.Error(p)
	}
	for _, p := range pending {
		t.Log(p)
	}
}

// nameProblems is checkNames's work: what is wrong, and what is pending.
func nameProblems(exprs []expression, rec map[string]string, inv inventory, pendingMetrics map[string]string) (problems, pending []string) {
	errorf := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	used := map[string]bool{}
	pendingUsed := map[string][]string{}
	for _, e := range exprs {
		info, err := analyze(e.expr)
		if err != nil {
			errorf("%s: %q: %v", e.where, e.expr, err)
			continue
		}
		var exported []string // exported metrics behind this expression
		for _, s := range info.selectors {
			used[s.metric] = true
			for _, in := range inputs(s.metric, rec) {
				used[in] = true
				if inv[in] != nil {
					exported = append(exported, in)
				}
			}
			switch {
			case s.metric == "up":
				continue
			case rec[s.metric] != "":
				continue
			case strings.Contains(s.metric, ":"):
				errorf("%s: %s looks like a recorded series, but no recording rule makes it", e.where, s.metric)
				continue
			case inv[s.metric] == nil && pendingMetrics[s.metric] != "":
				pendingUsed[s.metric] = append(pendingUsed[s.metric], e.where)
				continue
			case inv[s.metric] == nil:
				errorf("%s: metric %s is not on any gateway's or connector's /metrics (and not pending)", e.where, s.metric)
				continue
			}
			for _, m := range s.matchers {
				if targetLabels[m.label] {
					continue
				}
				vals := inv[s.metric][m.label]
				switch {
				case vals == nil:
					errorf("%s: %s has no label %q (it has %v)", e.where, s.metric, m.label, sortedKeys(inv[s.metric]))
				case m.op == "=" && !strings.Contains(m.value, "$") && !vals[m.value]:
					errorf("%s: %s{%s=%q}: the appliance exports no such value (it has %v)", e.where, s.metric, m.label, m.value, sortedKeys(vals))
				}
			}
		}
		if len(exported) == 0 {
			continue // every input is pending or up: nothing to check labels on
		}
		for _, g := range info.grouping {
			found := targetLabels[g]
			for _, m := range exported {
				found = found || inv[m][g] != nil
			}
			if !found {
				errorf("%s: groups or matches on label %q, which none of %v has", e.where, g, exported)
			}
		}
	}
	for _, name := range sortedKeys(pendingMetrics) {
		switch {
		case inv[name] != nil:
			errorf("pending metric %s is exported now: delete it from pendingMetrics in pending_test.go", name)
		case !used[name]:
			errorf("pending metric %s is used by no dashboard or rule: delete it from pendingMetrics", name)
		default:
			pending = append(pending, fmt.Sprintf("PENDING metric %s (%s), used by %d expressions", name, pendingMetrics[name], len(pendingUsed[name])))
		}
	}
	return problems, pending
}

// grafanaRateInterval is Grafana's $__rate_interval for the test's data source:
// max($__interval + scrape interval, 4 x scrape interval), with $__interval at
// its minimum, the scrape interval.
var grafanaRateInterval = (4 * scrapeInterval).String()

// regexSpecial are the characters Grafana's Prometheus data source escapes in a
// multi-value variable's values.
var regexSpecial = regexp.MustCompile(`[\\^$*+?.()|{}\[\]]`)

// interpolate substitutes Grafana variables as the Prometheus data source does
// for multi-value variables: each value regex-escaped, several joined as (a|b).
func interpolate(expr string, vals map[string][]string) string {
	return varRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		name := strings.TrimPrefix(m[1], "{")
		if m[2] != "" {
			name = m[2]
		}
		switch name {
		case "__rate_interval":
			return grafanaRateInterval
		case "__interval":
			return scrapeInterval.String()
		}
		vs, ok := vals[name]
		if !ok {
			return ref
		}
		var esc []string
		for _, v := range vs {
			esc = append(esc, regexSpecial.ReplaceAllString(v, `\\$0`))
		}
		if len(esc) == 1 {
			return esc[0]
		}
		return "(" + strings.Join(esc, "|") + ")"
	})
}

// panelResult is what one panel's queries gave in one round.
type panelResult struct {
	key      string // uid/title
	nonEmpty int    // targets that returned data
	targets  int
	empties  []string // queries that returned nothing and must not
	pending  []string // queries that returned nothing and may (pending metrics)
}

// checkPanels resolves every dashboard variable and evaluates every panel query
// against Prometheus, until each query that must return data does (or a minute
// passes). A query Prometheus refuses fails at once.
func checkPanels(t *testing.T, p *promServer, dashes []dashboard, rec map[string]string) {
	// A query Prometheus cannot parse must come back as an error, or a broken
	// panel would pass as merely empty.
	var ae *apiError
	if _, err := p.series(`sum(rate(cmg_gateway_requests_total[5m])`, false); !errors.As(err, &ae) || ae.typ != "bad_data" {
		t.Fatalf("an unparsable query: got %v, want a bad_data error", err)
	}
	listed := map[string]bool{}
	var results map[string]*panelResult
	var emptyVars []string
	deadline := time.Now().Add(90 * time.Second)
	for round := 0; ; round++ {
		results = map[string]*panelResult{}
		emptyVars = nil
		missing := 0
		for _, d := range dashes {
			vals := map[string][]string{}
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				sel, label, err := parseLabelValues(v.queryString())
				if err != nil {
					t.Fatalf("%s variable %s: %v", d.UID, v.Name, err)
				}
				sel = interpolate(sel, vals)
				got, err := p.labelValues(sel, label)
				if err != nil {
					t.Fatalf("%s variable %s: label_values(%s, %s): %v", d.UID, v.Name, sel, label, err)
				}
				if len(got) == 0 {
					missing++
					emptyVars = append(emptyVars, fmt.Sprintf("%s/%s: label_values(%s, %s)", d.UID, v.Name, sel, label))
					got = []string{"none-yet"}
				}
				vals[v.Name] = got
			}
			for _, pn := range d.allPanels() {
				if pn.Type == "row" {
					continue
				}
				key := d.UID + "/" + pn.Title
				if panelsWithoutDemoData[key] != "" {
					listed[key] = true
				}
				r := &panelResult{key: key, targets: len(pn.Targets)}
				results[key] = r
				for _, tg := range pn.Targets {
					expr := interpolate(tg.Expr, vals)
					n, err := p.series(expr, tg.Instant)
					if err != nil {
						t.Fatalf("%s query %s: Prometheus refuses %q: %v", key, tg.RefID, expr, err)
					}
					if n > 0 {
						r.nonEmpty++
						continue
					}
					info, _ := analyze(tg.Expr)
					where := fmt.Sprintf("%s (%s)", tg.RefID, expr)
					switch pend := pendingIn(info, rec); {
					case len(pend) > 0:
						r.pending = append(r.pending, where+" pending "+strings.Join(pend, ", "))
					case panelsWithoutDemoData[key] != "":
						r.pending = append(r.pending, where)
					default:
						r.empties = append(r.empties, where)
						missing++
					}
				}
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			t.Logf("panel queries settled after %d rounds", round+1)
			break
		}
		time.Sleep(time.Second)
	}
	for _, v := range emptyVars {
		t.Errorf("variable %s found no value", v)
	}
	for _, k := range sortedKeys(panelsWithoutDemoData) {
		if !listed[k] {
			t.Errorf("panelsWithoutDemoData names %s, which no dashboard has", k)
		}
	}
	checked, pending := 0, 0
	for _, k := range sortedKeys(results) {
		r := results[k]
		for _, e := range r.empties {
			t.Errorf("%s: query %s returned no data, though the demo produces it", k, e)
		}
		if panelsWithoutDemoData[k] != "" && r.nonEmpty == r.targets {
			t.Errorf("%s has data now: delete it from panelsWithoutDemoData in pending_test.go", k)
		}
		if len(r.pending) > 0 {
			pending++
			t.Logf("PENDING panel %s: %s", k, strings.Join(r.pending, "; "))
		} else {
			checked++
		}
	}
	t.Logf("%d panels returned data, %d are pending", checked, pending)
}

// checkRules: Prometheus loaded every rule, evaluates each without error, and
// each recording rule whose inputs the demo exports records something.
func checkRules(t *testing.T, p *promServer, rules []rule) {
	type loaded struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	}
	var got map[string]loaded
	waitUntil(t, "every rule evaluated", 30*time.Second, func() bool {
		var data struct {
			Groups []struct {
				Rules []loaded `json:"rules"`
			} `json:"groups"`
		}
		if err := p.get("/api/v1/rules", url.Values{}, &data); err != nil {
			t.Fatal(err)
		}
		got = map[string]loaded{}
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				got[r.Name] = r
				if r.Health == "unknown" {
					return false
				}
			}
		}
		return true
	})
	rec := recorded(rules)
	for _, r := range rules {
		name := r.Alert + r.Record
		l, ok := got[name]
		switch {
		case !ok:
			t.Errorf("rule %s: not loaded by Prometheus", name)
		case l.Health != "ok":
			t.Errorf("rule %s: health %s: %s", name, l.Health, l.LastError)
		}
		if r.Record == "" {
			continue
		}
		info, err := analyze(r.Expr)
		if err != nil {
			t.Fatal(err)
		}
		if pend := pendingIn(info, rec); len(pend) > 0 {
			t.Logf("PENDING recording rule %s: needs %s", name, strings.Join(pend, ", "))
			continue
		}
		waitUntil(t, "recorded series "+name, 30*time.Second, func() bool {
			n, err := p.series(name, true)
			if err != nil {
				t.Fatal(err)
			}
			return n > 0
		})
	}
}

func TestNameProblems(t *testing.T) {
	inv := inventory{
		"cmg_gateway_requests_total": {"role": {"management_point": true}, "code": {"200": true}},
		"cmg_tunnel_sessions":        {"connector": {"cp1": true}, "transport": {"tcp_tls": true}},
		"cmg_exported_pending":       {},
	}
	rec := map[string]string{"job:x:sum": "sum without (instance) (cmg_gateway_requests_total)"}
	pending := map[string]string{"cmg_later_total": "later", "cmg_exported_pending": "now", "cmg_unused": "nobody"}
	tests := []struct {
		name, expr string
		want       string // a problem containing this; "" for none
	}{
		{"exported with its labels", `sum by (role) (rate(cmg_gateway_requests_total{role="management_point", instance=~"$instance"}[5m]))`, ""},
		{"recorded and up", `job:x:sum / up`, ""},
		{"pending", `rate(cmg_later_total[5m])`, ""},
		{"missing metric", `cmg_gateway_request_total`, "cmg_gateway_request_total is not on any"},
		{"missing label", `cmg_tunnel_sessions{gateway="x"}`, `has no label "gateway"`},
		{"missing label value", `cmg_tunnel_sessions{transport="quic"}`, `exports no such value`},
		{"grouping on a missing label", `sum by (site_name) (cmg_tunnel_sessions)`, `label "site_name"`},
		{"unrecorded rule name", `job:y:sum`, "no recording rule makes it"},
		{"regex values are not checked", `cmg_tunnel_sessions{transport=~"https|https_proxy"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			problems, _ := nameProblems([]expression{{where: "x", expr: tc.expr}, {where: "y", expr: "cmg_later_total"}}, rec, inv, pending)
			var got []string
			for _, p := range problems {
				if !strings.Contains(p, "pending metric") {
					got = append(got, p)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("got problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("got problems %q, want one containing %q", got, tc.want)
			}
		})
	}
	problems, _ := nameProblems([]expression{{where: "x", expr: "cmg_later_total"}}, rec, inv, pending)
	for _, want := range []string{"cmg_exported_pending is exported now", "cmg_unused is used by no dashboard"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("got problems %q, want one containing %q", problems, want)
		}
	}
}
