// Package e2e holds the end-to-end tests: real TLS on real sockets, the real curl
// binary as the device, and (in process_test.go) the built cmg binary as
// separate processes for everything with a time or a memory figure in it.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/metrics"
)

// freePortBase finds a port base whose demo ports are all free now.
func freePortBase(t testing.TB) int {
	t.Helper()
	offsets := []int{80, 443, 444, 1100, 1101, 1200, 1201, 2124, 2125, 2140, 2141}
	for try := 0; try < 50; try++ {
		// Below the ephemeral port range (32768-60999), so that a process
		// restarted by a test finds its ports still free.
		base := 10000 + rand.IntN(200)*100
		ok := true
		var lns []net.Listener
		for _, off := range offsets {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port base")
	return 0
}

// env is a demo setup run in this process, with each part stoppable on its own.
type env struct {
	t     *testing.T
	opts  envOptions
	m     *demo.Manifest
	gws   []*part
	conns []*part
	roles *part
	// logs are the log files of the parts, by name (the latest of a restarted
	// part).
	logs map[string]string
}

// part is one running component.
type part struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	admin  string
}

func (p *part) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

// envOptions tweak the demo's generated configuration.
type envOptions struct {
	gateway   func(i int, c *gateway.Config)
	connector func(j int, c *connector.Config)
	// connectors is how many of the demo's connectors to start (default 2).
	connectors int
	// gatewayOptions tweaks what gateway i is given besides its configuration.
	gatewayOptions func(i int, o *gateway.Options)
	// roles tweaks the simulated roles' configuration.
	roles func(c *roles.Config)
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	m, err := demo.Init(t.TempDir(), freePortBase(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m, opts: opts, logs: map[string]string{}}
	t.Cleanup(e.stopAll)
	e.startRoles()
	for i := range m.Gateways {
		cfg := demo.GatewayConfig(m, i)
		if opts.gateway != nil {
			opts.gateway(i, &cfg)
		}
		e.gws = append(e.gws, e.startGateway(i, cfg))
	}
	n := opts.connectors
	if n == 0 {
		n = len(m.Connectors)
	}
	for j := 0; j < n; j++ {
		cfg := demo.ConnectorConfig(m, j)
		cfg.Health.Interval = 200 * time.Millisecond
		if opts.connector != nil {
			opts.connector(j, &cfg)
		}
		e.conns = append(e.conns, e.startConnector(cfg))
	}
	// Registered again so the parts stop before the loggers' cleanups (LIFO).
	t.Cleanup(e.stopAll)
	e.waitSessions(n)
	return e
}

func (e *env) logger(name string) *slogLogger {
	l := newTestLogger(e.t, name)
	if e.logs == nil {
		e.logs = map[string]string{}
	}
	e.logs[name] = l.path
	return l
}

func (e *env) startRoles() {
	cfg := roles.DefaultConfig()
	if e.opts.roles != nil {
		e.opts.roles(&cfg)
	}
	issuer, err := demo.SiteTokenIssuer(e.m)
	if err != nil {
		e.t.Fatal(err)
	}
	contentIss, err := demo.SiteIssuer(e.m)
	if err != nil {
		e.t.Fatal(err)
	}
	srv, err := roles.New(cfg, e.logger("roles").Logger, roles.WithTokenIssuer(issuer), roles.WithContentTokens(contentIss))
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", e.m.Roles.Listen)
	if err != nil {
		e.t.Fatal(err)
	}
	e.roles = run("roles", func(ctx context.Context) error { return srv.Run(ctx, ln) })
}

func (e *env) startGateway(i int, cfg gateway.Config) *part {
	o := gateway.Options{Logger: e.logger(fmt.Sprintf("gateway-%d", i)).Logger, Registry: metrics.NewRegistry("gateway")}
	if e.opts.gatewayOptions != nil {
		e.opts.gatewayOptions(i, &o)
	}
	g, err := gateway.New(cfg, o)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		e.t.Fatal(err)
	}
	p := run(fmt.Sprintf("gateway-%d", i), g.Run)
	p.admin = "http://" + g.AdminAddr().String()
	return p
}

func (e *env) startConnector(cfg connector.Config) *part {
	c, err := connector.New(cfg, connector.Options{Logger: e.logger("connector-" + cfg.Name).Logger, Registry: metrics.NewRegistry("connector")})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		e.t.Fatal(err)
	}
	p := run("connector-"+cfg.Name, c.Run)
	p.admin = "http://" + c.AdminAddr().String()
	return p
}

func run(name string, f func(context.Context) error) *part {
	ctx, cancel := context.WithCancel(context.Background())
	p := &part{name: name, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(p.done); _ = f(ctx) }()
	return p
}

func (e *env) stopAll() {
	for _, p := range e.conns {
		p.stop()
	}
	for _, p := range e.gws {
		p.stop()
	}
	if e.roles != nil {
		e.roles.stop()
	}
}

// waitSessions waits until every gateway instance holds n connector sessions.
func (e *env) waitSessions(n int) {
	e.t.Helper()
	for i := range e.gws {
		waitFor(e.t, fmt.Sprintf("%d sessions on gateway %d", n, i), 10*time.Second, func() bool {
			return len(gatewayStatus(e.t, e.gws[i].admin).Connectors) == n
		})
	}
}

// waitFor polls cond (the parts expose their state only over their APIs).
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gatewayStatus(t *testing.T, adminURL string) gateway.Status {
	t.Helper()
	var st gateway.Status
	getJSON(t, adminURL+"/api/v1/status", &st)
	return st
}

// curlResult is what curl saw.
type curlResult struct {
	status int
	header http.Header
	body   []byte
	stderr string
}

// curl runs the real curl binary against the gateway. args come before the URL;
// cert adds the demo device certificate.
func (e *env) curl(withCert bool, url string, args ...string) curlResult {
	e.t.Helper()
	return e.curlWith(nil, withCert, url, args...)
}

func (e *env) curlWith(stdin []byte, withCert bool, url string, args ...string) curlResult {
	e.t.Helper()
	dir := e.t.TempDir()
	hdr, body := filepath.Join(dir, "h"), filepath.Join(dir, "b")
	all := []string{"-sS", "--http1.1", "--cacert", e.m.CAFile, "-D", hdr, "-o", body, "-w", "%{http_code}"}
	if withCert {
		all = append(all, "--cert", e.m.ClientCertFile, "--key", e.m.ClientKeyFile)
	}
	all = append(all, args...)
	all = append(all, url)
	cmd := exec.Command("curl", all...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return curlResult{stderr: errb.String() + err.Error()}
	}
	code, _ := strconv.Atoi(strings.TrimSpace(out.String()))
	res := curlResult{status: code, stderr: errb.String()}
	res.body, _ = os.ReadFile(body)
	res.header = parseCurlHeaders(e.t, hdr)
	return res
}

func parseCurlHeaders(t *testing.T, path string) http.Header {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	// curl may write several header blocks (100 Continue); keep the last.
	blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(data), "\r\n", "\n")), "\n\n")
	for _, line := range strings.Split(blocks[len(blocks)-1], "\n")[1:] {
		if k, v, ok := strings.Cut(line, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h
}

// deviceClient is a Go HTTP client holding the demo device certificate, for
// request volumes where starting curl each time would measure curl.
func (e *env) deviceClient(withCert bool) *http.Client {
	return deviceClient(e.t, e.m, withCert)
}

func deviceClient(t testing.TB, m *demo.Manifest, withCert bool) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if withCert {
		c, err := tls.LoadX509KeyPair(m.ClientCertFile, m.ClientKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: false, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := jsonDecode(resp.Body, v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// scrape fetches and parses a /metrics page.
func scrape(t testing.TB, adminURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", adminURL, err)
	}
	return fams
}

// metricValue is the value of the series of family name whose labels include
// every pair given, summed over matching series.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}
