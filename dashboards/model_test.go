package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of the files the tests read. Grafana's schema itself is checked by
// the foundation SDK's strict decoder (tools/dashcheck), not by these structs.

type dashboard struct {
	file       string
	UID        string          `json:"uid"`
	Title      string          `json:"title"`
	Version    int             `json:"version"`
	Tags       []string        `json:"tags"`
	Links      []dashboardLink `json:"links"`
	Panels     []panel         `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type dashboardLink struct {
	Title string `json:"title"`
	Type  string `json:"type"`
	URL   string `json:"url"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    gridPos     `json:"gridPos"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // of a collapsed row
}

type gridPos struct{ H, W, X, Y int }

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Instant    bool        `json:"instant"`
	Datasource *datasource `json:"datasource"`
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

// queryString is the PromQL of a query variable (a string, or the object the
// Prometheus variable editor writes).
func (v variable) queryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// allPanels flattens rows (collapsed rows hold their panels).
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("grafana/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboard in grafana/")
	}
	var out []dashboard
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = f
		out = append(out, d)
	}
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ruleFiles are the rule files, in the order Prometheus loads them.
var ruleFiles = []string{"prometheus/cmg-recording.rules.yaml", "prometheus/cmg-alerts.rules.yaml"}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var out []rule
	for _, f := range ruleFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.Unmarshal(data, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			out = append(out, g.Rules...)
		}
	}
	return out
}

// recorded maps each recording rule's name to its expression.
func recorded(rules []rule) map[string]string {
	m := map[string]string{}
	for _, r := range rules {
		if r.Record != "" {
			m[r.Record] = r.Expr
		}
	}
	return m
}

// expression is one PromQL expression of the files, with where it is.
type expression struct {
	where string // "cmg-overview/Requests/A", "variable cmg-overview/role", "rule CmgConnectorDown"
	expr  string
	// dash and panel are set for panel targets and variables.
	dash  *dashboard
	panel *panel
	tgt   *target
}

// expressions lists every expression of every dashboard (panel targets and the
// metric of each label_values variable) and every rule.
func expressions(t *testing.T, dashes []dashboard, rules []rule) []expression {
	t.Helper()
	var out []expression
	for i := range dashes {
		d := &dashes[i]
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			metric, _, err := parseLabelValues(v.queryString())
			if err != nil {
				t.Errorf("%s variable %s: %v", d.UID, v.Name, err)
				continue
			}
			out = append(out, expression{where: "variable " + d.UID + "/" + v.Name, expr: metric, dash: d})
		}
		for _, p := range d.allPanels() {
			p := p
			for _, tg := range p.Targets {
				tg := tg
				out = append(out, expression{where: d.UID + "/" + p.Title + "/" + tg.RefID, expr: tg.Expr, dash: d, panel: &p, tgt: &tg})
			}
		}
	}
	for _, r := range rules {
		name := r.Alert
		if name == "" {
			name = r.Record
		}
		out = append(out, expression{where: "rule " + name, expr: r.Expr})
	}
	return out
}

// parseLabelValues reads `label_values(selector, label)`, the only variable query
// the dashboards use.
func parseLabelValues(q string) (sel, label string, err error) {
	q = strings.TrimSpace(q)
	if !strings.HasPrefix(q, "label_values(") || !strings.HasSuffix(q, ")") {
		return "", "", fmt.Errorf("variable query %q is not label_values(selector, label)", q)
	}
	inner := q[len("label_values(") : len(q)-1]
	i := strings.LastIndexByte(inner, ',')
	if i < 0 {
		return "", "", fmt.Errorf("variable query %q names no metric", q)
	}
	return strings.TrimSpace(inner[:i]), strings.TrimSpace(inner[i+1:]), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
