package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// wantDashboards are the five dashboards of DESIGN section 12, by uid.
var wantDashboards = []string{"cmg-overview", "cmg-tunnels", "cmg-cost", "cmg-notifications", "cmg-runtime"}

var (
	dashcheckOnce sync.Once
	dashcheckPath string
	dashcheckErr  error
)

// dashcheck is tools/dashcheck: bin/dashcheck as scripts/install-test-deps builds
// it, else built now from the tools module (its own go.mod, so the SDK never
// enters the product's).
func dashcheck(t *testing.T) string {
	t.Helper()
	dashcheckOnce.Do(func() {
		if p, err := filepath.Abs("../bin/dashcheck"); err == nil {
			if _, err := os.Stat(p); err == nil {
				dashcheckPath = p
				return
			}
		}
		dir, err := os.MkdirTemp("", "dashcheck")
		if err != nil {
			dashcheckErr = err
			return
		}
		dashcheckPath = filepath.Join(dir, "dashcheck")
		out, err := exec.Command("go", "-C", "../tools", "build", "-o", dashcheckPath, "./dashcheck").CombinedOutput()
		if err != nil {
			dashcheckErr = fmt.Errorf("building tools/dashcheck: %v\n%s", err, out)
		}
	})
	if dashcheckErr != nil {
		t.Fatal(dashcheckErr)
	}
	return dashcheckPath
}

func TestDashboardsValidateAgainstGrafanaSchema(t *testing.T) {
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard in grafana/ (%v)", err)
	}
	out, err := exec.Command(dashcheck(t), files...).CombinedOutput()
	if err != nil {
		t.Fatalf("dashboards do not validate against Grafana's dashboard schema: %v\n%s", err, out)
	}
}

// The validator must refuse what Grafana's schema refuses, or the test above
// proves nothing.
func TestDashcheckRefusesInvalidDashboards(t *testing.T) {
	data, err := os.ReadFile("grafana/cmg-overview.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		break_ func(d map[string]any)
		want   string
	}{
		{"unknown panel option", func(d map[string]any) {
			panelAt(d, 1)["options"].(map[string]any)["bogus"] = 1
		}, "unexpected field 'bogus'"},
		{"grid position without height", func(d map[string]any) {
			delete(panelAt(d, 1)["gridPos"].(map[string]any), "h")
		}, "gridPos.h: required field is missing"},
		{"misspelt query field", func(d map[string]any) {
			tg := panelAt(d, 1)["targets"].([]any)[0].(map[string]any)
			tg["exprs"] = tg["expr"]
		}, "unexpected field 'exprs'"},
		{"wrong type", func(d map[string]any) { d["graphTooltip"] = "shared" }, "graphTooltip"},
		{"unknown dashboard field", func(d map[string]any) { d["refreshh"] = "1m" }, "unexpected field 'refreshh'"},
		{"panel type whose options are not checked", func(d map[string]any) { panelAt(d, 1)["type"] = "piechart" }, `"piechart" is not a panel type dashcheck checks`},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			tc.break_(d)
			bad, _ := json.Marshal(d)
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(dashcheck(t), path).CombinedOutput()
			if err == nil {
				t.Fatalf("dashcheck accepted a dashboard with %s", tc.name)
			}
			if !bytes.Contains(out, []byte(tc.want)) {
				t.Errorf("dashcheck output: got %q, want it to contain %q", out, tc.want)
			}
		})
	}
}

func panelAt(d map[string]any, i int) map[string]any {
	return d["panels"].([]any)[i].(map[string]any)
}

var varRef = regexp.MustCompile(`\$(\{([A-Za-z0-9_]+)(:[a-z]+)?\}|[A-Za-z0-9_]+)`)

// grafanaBuiltins are the variables Grafana defines itself.
var grafanaBuiltins = map[string]bool{
	"__rate_interval": true, "__interval": true, "__interval_ms": true, "__range": true,
	"__range_s": true, "__range_ms": true, "__from": true, "__to": true, "__all": true,
	"__dashboard": true, "__user": true, "__org": true, "__name": true,
}

// TestDashboardsLint checks what Grafana's schema cannot: the conventions every
// dashboard keeps so the files work together.
func TestDashboardsLint(t *testing.T) {
	dashes := loadDashboards(t)
	var uids []string
	for _, d := range dashes {
		uids = append(uids, d.UID)
	}
	slices.Sort(uids)
	want := slices.Clone(wantDashboards)
	slices.Sort(want)
	if !slices.Equal(uids, want) {
		t.Errorf("dashboard uids: got %q, want %q", uids, want)
	}
	for _, d := range dashes {
		t.Run(d.UID, func(t *testing.T) {
			if base := filepath.Base(d.file); base != d.UID+".json" {
				t.Errorf("file %s holds uid %s: name files after their uid", base, d.UID)
			}
			if len(d.UID) > 40 {
				t.Errorf("uid %q is longer than Grafana's 40 characters", d.UID)
			}
			if d.Version < 1 {
				t.Errorf("version: got %d, want 1 or more", d.Version)
			}
			if !strings.HasPrefix(d.Title, "cmg / ") {
				t.Errorf("title %q: want it to start with %q", d.Title, "cmg / ")
			}
			if !slices.Contains(d.Tags, "cmg") {
				t.Errorf("tags %q: want cmg (the dashboards link to each other by it)", d.Tags)
			}
			defined := map[string]bool{}
			for _, v := range d.Templating.List {
				defined[v.Name] = true
			}
			if len(d.Templating.List) == 0 || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Name != "datasource" ||
				string(d.Templating.List[0].Query) != `"prometheus"` {
				t.Errorf("the first variable must be the Prometheus data source variable named datasource")
			}
			for _, v := range d.Templating.List[1:] {
				if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
					t.Errorf("variable %s: data source %+v, want ${datasource}", v.Name, v.Datasource)
				}
				if v.Type == "query" && v.AllValue != "" {
					t.Errorf("variable %s: allValue %q: leave it out so All is exactly the values found", v.Name, v.AllValue)
				}
			}
			ids := map[int]bool{}
			titles := map[string]bool{}
			for _, p := range d.allPanels() {
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
				if p.GridPos.W < 1 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
					t.Errorf("panel %q: grid position %+v outside the 24-column grid", p.Title, p.GridPos)
				}
				if p.Type == "row" {
					continue
				}
				if titles[p.Title] {
					t.Errorf("panel title %q used twice (the tests and the pending list name panels by title)", p.Title)
				}
				titles[p.Title] = true
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q query %s: data source %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
					}
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("panel %q query %s is empty", p.Title, tg.RefID)
					}
					for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
						name := strings.TrimPrefix(m[1], "{")
						if m[2] != "" {
							name = m[2]
						}
						if !defined[name] && !grafanaBuiltins[name] {
							t.Errorf("panel %q query %s uses $%s, which the dashboard does not define", p.Title, tg.RefID, name)
						}
					}
				}
			}
		})
	}
}

// The runtime dashboard links to traces and profiles, through the data sources the
// provisioning file defines.
func TestRuntimeLinksToTracesAndProfiles(t *testing.T) {
	var runtime *dashboard
	dashes := loadDashboards(t)
	for i := range dashes {
		if dashes[i].UID == "cmg-runtime" {
			runtime = &dashes[i]
		}
	}
	if runtime == nil {
		t.Fatal("no cmg-runtime dashboard")
	}
	provisioned := provisionedDatasources(t)
	for _, want := range []struct{ title, uid, typ string }{
		{"Traces", "cmg-traces", "jaeger"},
		{"Profiles", "cmg-profiles", "grafana-pyroscope-datasource"},
	} {
		var link *dashboardLink
		for i := range runtime.Links {
			if runtime.Links[i].Title == want.title {
				link = &runtime.Links[i]
			}
		}
		if link == nil {
			t.Errorf("cmg-runtime has no %q link", want.title)
			continue
		}
		u, err := url.Parse(link.URL)
		if err != nil || u.Path != "/explore" {
			t.Errorf("%s link %q: want an Explore URL (%v)", want.title, link.URL, err)
			continue
		}
		var panes map[string]struct {
			Datasource string `json:"datasource"`
			Queries    []struct {
				Datasource datasource `json:"datasource"`
			} `json:"queries"`
		}
		if err := json.Unmarshal([]byte(u.Query().Get("panes")), &panes); err != nil {
			t.Errorf("%s link: panes: %v", want.title, err)
			continue
		}
		pane := panes["a"]
		if pane.Datasource != want.uid || len(pane.Queries) != 1 || pane.Queries[0].Datasource.UID != want.uid {
			t.Errorf("%s link: got pane %+v, want data source %s", want.title, pane, want.uid)
		}
		if got := provisioned[want.uid]; got != want.typ {
			t.Errorf("provisioned data source %s: type %q, want %q", want.uid, got, want.typ)
		}
	}
}

// provisionedDatasources maps uid to type from provisioning/datasources.
func provisionedDatasources(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("provisioning/datasources/cmg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name     string         `yaml:"name"`
			UID      string         `yaml:"uid"`
			Type     string         `yaml:"type"`
			URL      string         `yaml:"url"`
			JSONData map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("provisioning/datasources/cmg.yaml: %v", err)
	}
	if f.APIVersion != 1 {
		t.Errorf("datasources apiVersion: got %d, want 1", f.APIVersion)
	}
	out := map[string]string{}
	for _, ds := range f.Datasources {
		if !regexp.MustCompile(`^\$\{CMG_[A-Z_]+_URL\}$`).MatchString(ds.URL) {
			t.Errorf("data source %s: url %q, want ${CMG_..._URL} from the environment", ds.UID, ds.URL)
		}
		out[ds.UID] = ds.Type
	}
	if out["cmg-prometheus"] != "prometheus" {
		t.Errorf("no prometheus data source with uid cmg-prometheus: got %v", out)
	}
	return out
}

func TestDashboardProvisioning(t *testing.T) {
	data, err := os.ReadFile("provisioning/dashboards/cmg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Folder  string `yaml:"folder"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.APIVersion != 1 || len(f.Providers) != 1 {
		t.Fatalf("got apiVersion %d and %d providers, want 1 and 1", f.APIVersion, len(f.Providers))
	}
	p := f.Providers[0]
	if p.Type != "file" || p.Folder != "cmg" || p.Options.Path != "/var/lib/grafana/dashboards/cmg" {
		t.Errorf("provider: got type %q folder %q path %q, want file, cmg, /var/lib/grafana/dashboards/cmg", p.Type, p.Folder, p.Options.Path)
	}
	// The datasource file must parse too (its checks run with the runtime links).
	provisionedDatasources(t)
}
