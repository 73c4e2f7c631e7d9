package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tool finds a test tool installed by scripts/install-test-deps: on PATH, or in
// the repository's bin/. A missing tool fails the test (never skips it).
func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", "bin", name))
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	t.Fatalf("%s is not installed: run scripts/install-test-deps", name)
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startTool runs a server process for the test's duration, its output in a file
// that is printed when the test fails, and stops it by its PID.
func startTool(t testing.TB, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			printTail(t, filepath.Base(name), logPath, 30)
		}
	})
}

// promServer is a real Prometheus server scraping the test's targets.
type promServer struct {
	t   *testing.T
	url string
}

// startPrometheus runs Prometheus on loopback, scraping each job's admin
// targets (host:port) every 500 ms, with exemplar storage on.
func startPrometheus(t *testing.T, jobs map[string][]string) *promServer {
	t.Helper()
	bin := tool(t, "prometheus")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\nscrape_configs:\n")
	names := make([]string, 0, len(jobs))
	for j := range jobs {
		names = append(names, j)
	}
	sort.Strings(names)
	for _, j := range names {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%s]\n", j, strings.Join(jobs[j], ", "))
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startTool(t, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--enable-feature=exemplar-storage", "--log.level=warn")
	p := &promServer{t: t, url: "http://" + addr}
	waitFor(t, "Prometheus to be ready", 30*time.Second, func() bool {
		resp, err := httpGetQuick(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// promResult is the data of a Prometheus API answer.
type promResult struct {
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Data   json.RawMessage `json:"data"`
}

func (p *promServer) api(path string, params url.Values, v any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r promResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
	if r.Status != "success" {
		p.t.Fatalf("%s %v: %s", path, params, r.Error)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
}

// series returns the label sets of the series matching the selector.
func (p *promServer) series(match string) []map[string]string {
	p.t.Helper()
	var out []map[string]string
	p.api("/api/v1/series", url.Values{"match[]": {match}}, &out)
	return out
}

// query evaluates an instant query and returns each series' labels and value.
func (p *promServer) query(q string) []promSample {
	p.t.Helper()
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	p.api("/api/v1/query", url.Values{"query": {q}}, &data)
	var out []promSample
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		out = append(out, promSample{labels: r.Metric, value: s})
	}
	return out
}

type promSample struct {
	labels map[string]string
	value  string
}
