package dashboards

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/identity"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	ltrun "github.com/cmg-gateway/cmg/loadtest/run"
	"github.com/cmg-gateway/cmg/metrics"
	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/tunnel"
)

// This file runs the demo in this process (two gateway instances, two
// connectors, the simulated roles), as e2e/env_test.go does, with each gateway
// restartable so that event-only series (reconnects, reloads) exist.

// demoEnv is the running demo.
type demoEnv struct {
	t     *testing.T
	m     *demo.Manifest
	log   *slog.Logger
	gws   []*demoPart
	conns []*demoPart
	roles *demoPart
}

// demoPart is one running component.
type demoPart struct {
	name   string
	admin  string
	gw     *gateway.Gateway
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *demoPart) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

func startPart(name string, run func(context.Context) error) *demoPart {
	ctx, cancel := context.WithCancel(context.Background())
	p := &demoPart{name: name, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(p.done); _ = run(ctx) }()
	return p
}

// freePortBase finds a demo port base whose ports are all free now.
func freePortBase(t *testing.T) int {
	t.Helper()
	offsets := []int{80, 443, 444, 1100, 1101, 1200, 1201, 2124, 2125, 2140, 2141}
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(400)*100
		var lns []net.Listener
		ok := true
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
	t.Fatal("no free demo port base")
	return 0
}

func startDemo(t *testing.T) *demoEnv {
	t.Helper()
	dir := t.TempDir()
	m, err := demo.Init(dir, freePortBase(t))
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	e := &demoEnv{t: t, m: m, log: slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	t.Cleanup(e.stopAll)

	srv, err := roles.New(roles.DefaultConfig(), e.log.With("part", "roles"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", m.Roles.Listen)
	if err != nil {
		t.Fatal(err)
	}
	e.roles = startPart("roles", func(ctx context.Context) error { return srv.Run(ctx, ln) })
	for i := range m.Gateways {
		e.gws = append(e.gws, e.startGateway(i))
	}
	for j := range m.Connectors {
		cfg := demo.ConnectorConfig(m, j)
		cfg.Health.Interval = 500 * time.Millisecond
		if j == len(m.Connectors)-1 {
			// The last connector rides the HTTPS rung only, as one behind a
			// firewall that blocks the TCP-TLS port would: the fallback-transport
			// panels then have data on every run, not only when a busy machine
			// made a TCP-TLS dial time out.
			cfg.Gateway.Transports = []string{tunnel.TransportHTTPS}
		}
		c, err := connector.New(cfg, connector.Options{Logger: e.log.With("part", "connector-"+cfg.Name), Registry: metrics.NewRegistry("connector")})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		p := startPart("connector-"+cfg.Name, c.Run)
		p.admin = "http://" + c.AdminAddr().String()
		e.conns = append(e.conns, p)
	}
	for i := range e.gws {
		e.waitSessions(i)
	}
	return e
}

func (e *demoEnv) startGateway(i int) *demoPart {
	e.t.Helper()
	g, err := gateway.New(demo.GatewayConfig(e.m, i), gateway.Options{Logger: e.log.With("part", fmt.Sprintf("gateway-%d", i)), Registry: metrics.NewRegistry("gateway")})
	if err != nil {
		e.t.Fatal(err)
	}
	// Gateway.Run returns before its tunnel and admin listeners are closed (they
	// close on a context.AfterFunc): after a restart, wait for the ports.
	waitUntil(e.t, fmt.Sprintf("gateway %d's ports", i), 10*time.Second, func() bool { return g.Listen() == nil })
	p := startPart(fmt.Sprintf("gateway-%d", i), g.Run)
	p.admin, p.gw = "http://"+g.AdminAddr().String(), g
	return p
}

// restartGateway stops gateway i and starts it again on the same ports: its
// connectors re-dial it (cmg_connector_tunnel_reconnects_total).
func (e *demoEnv) restartGateway(i int) {
	e.gws[i].stop()
	e.gws[i] = e.startGateway(i)
	e.waitSessions(i)
}

// reloadGateway reloads gateway i's configuration as SIGHUP does
// (cmg_config_reloads_total).
func (e *demoEnv) reloadGateway(i int) { e.gws[i].gw.Reload(e.m.Gateways[i].Config) }

func (e *demoEnv) stopAll() {
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

// waitSessions waits until gateway i holds a session from every connector (its
// status API is the readiness signal).
func (e *demoEnv) waitSessions(i int) {
	e.t.Helper()
	waitUntil(e.t, fmt.Sprintf("every connector on gateway %d", i), 20*time.Second, func() bool {
		var st gateway.Status
		return getJSON(e.gws[i].admin+"/api/v1/status", &st) == nil && len(st.Connectors) == len(e.conns)
	})
}

func (e *demoEnv) adminURLs() (gateways, connectors []string) {
	for _, p := range e.gws {
		gateways = append(gateways, p.admin)
	}
	for _, p := range e.conns {
		connectors = append(connectors, p.admin)
	}
	return gateways, connectors
}

// waitUntil polls cond: the parts expose their state only over their APIs.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// inventory is what the appliance's /metrics pages hold: each sample name with
// the values of each of its labels.
type inventory map[string]map[string]map[string]bool

// scrapeInventory reads every page of urls (admin base URLs).
func scrapeInventory(t *testing.T, urls []string) inventory {
	t.Helper()
	inv := inventory{}
	add := func(name string, labels map[string]string) {
		if inv[name] == nil {
			inv[name] = map[string]map[string]bool{}
		}
		for k, v := range labels {
			if inv[name][k] == nil {
				inv[name][k] = map[string]bool{}
			}
			inv[name][k][v] = true
		}
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s/metrics: %v", u, err)
		}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				switch {
				case m.Histogram != nil:
					add(name+"_sum", labels)
					add(name+"_count", labels)
					labels["le"] = "+Inf"
					add(name+"_bucket", labels)
					for _, b := range m.Histogram.GetBucket() {
						labels["le"] = fmt.Sprint(b.GetUpperBound())
						add(name+"_bucket", labels)
					}
				case m.Summary != nil:
					add(name+"_sum", labels)
					add(name+"_count", labels)
					for _, q := range m.Summary.GetQuantile() {
						labels["quantile"] = fmt.Sprint(q.GetQuantile())
						add(name, labels)
					}
				default:
					add(name, labels)
				}
			}
		}
	}
	return inv
}

// sampleSum adds up the samples of a counter or gauge family on every page of urls.
func sampleSum(t *testing.T, urls []string, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, u := range urls {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s/metrics: %v", u, err)
		}
		for _, m := range fams[name].GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// trafficSource drives device traffic through the demo. The built-in one is a Go
// client; the load tester (`cmg loadtest`) can take its place.
type trafficSource interface {
	// Run sends traffic to the demo of m until ctx ends. It counts what it
	// sent; a failed request is traffic too (the demo restarts a gateway
	// meanwhile).
	Run(ctx context.Context, m *demo.Manifest) error
	// Sent is how many requests got an answer so far.
	Sent() int64
}

// builtinTraffic is a few devices' worth of requests to every gateway instance:
// management point policy requests, software update point uploads, and the
// errors a real service sees (an unknown route, a device without a
// certificate, a role answering 503).
type builtinTraffic struct {
	sent atomic.Int64
}

func (b *builtinTraffic) Sent() int64 { return b.sent.Load() }

func (b *builtinTraffic) Run(ctx context.Context, m *demo.Manifest) error {
	withCert, err := deviceClient(m, true)
	if err != nil {
		return err
	}
	noCert, err := deviceClient(m, false)
	if err != nil {
		return err
	}
	mp, sup := "/CCM_Proxy_MutualAuth/"+demo.MPRoleID, "/CCM_Proxy_MutualAuth/"+demo.SUPRoleID
	upload := bytes.Repeat([]byte("inventory "), 400)
	type req struct {
		c      *http.Client
		method string
		path   string
		body   []byte
		every  int // sent every n-th round
	}
	reqs := []req{
		{withCert, http.MethodGet, m.ExamplePath, nil, 1},
		{withCert, http.MethodPost, sup + "/cmg-echo", upload, 1},
		{withCert, http.MethodGet, mp + "/cmg-blob?size=65536", nil, 2},
		{withCert, http.MethodGet, mp + "/SMS_MP/.sms_aut?cmg-status=503", nil, 10},
		{withCert, http.MethodGet, "/CCM_Proxy_MutualAuth/1/nowhere", nil, 5},
		{noCert, http.MethodGet, m.ExamplePath, nil, 5},
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for round := 0; ; round++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		gw := m.Gateways[round%len(m.Gateways)]
		for _, r := range reqs {
			if round%r.every != 0 {
				continue
			}
			var body io.Reader
			if r.body != nil {
				body = bytes.NewReader(r.body)
			}
			hr, err := http.NewRequestWithContext(ctx, r.method, gw.ClientURL+r.path, body)
			if err != nil {
				return err
			}
			resp, err := r.c.Do(hr)
			if err != nil {
				continue // a restarting gateway, or ctx ended
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			b.sent.Add(1)
		}
	}
}

// loadTesterTraffic runs `cmg loadtest`'s engine against the demo: devices with
// their own certificates from the demo's device CA, the default profile with
// cmg's connection habits, a simulated month in thirty minutes, until ctx ends.
func loadTesterTraffic(ctx context.Context, m *demo.Manifest) error {
	src, err := identity.NewIssuer(filepath.Join(m.PKIDir, pki.DeviceCACert), filepath.Join(m.PKIDir, pki.DeviceCAKey), "dash-device", identity.ECDSA)
	if err != nil {
		return err
	}
	p, _ := profile.Builtin("default")
	cfg := ltrun.DefaultConfig()
	for _, g := range m.Gateways {
		cfg.Targets = append(cfg.Targets, g.ClientURL)
		cfg.GatewayAdmin = append(cfg.GatewayAdmin, g.AdminURL)
	}
	cfg.RootCAs = []string{m.CAFile}
	cfg.SiteURL = "http://" + m.Roles.Listen
	cfg.MPRoleID, cfg.SUPRoleID = demo.MPRoleID, demo.SUPRoleID
	cfg.Profile, cfg.Habits, cfg.Identity = p, profile.CMG, src
	// About a dozen exchanges a second: every class of the profile shows up
	// within the test, and a race-instrumented demo keeps up on two busy cores.
	cfg.Devices, cfg.Duration = 4, 30*24*time.Hour
	cfg.TimeScale = float64(cfg.Duration / (30 * time.Minute))
	_, err = ltrun.Run(ctx, cfg)
	return err
}

// deviceClient is an HTTP client with (or without) the demo device certificate.
func deviceClient(m *demo.Manifest, withCert bool) (*http.Client, error) {
	pem, err := os.ReadFile(m.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if withCert {
		c, err := tls.LoadX509KeyPair(m.ClientCertFile, m.ClientKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 8, DisableCompression: true},
		Timeout:   30 * time.Second,
	}, nil
}

// TestAgainstDemo proves the dashboards and rules against the appliance: the demo
// runs with traffic, one gateway restarted and one reloaded; then every metric
// name and label the files use must be on /metrics, and a real Prometheus
// scraping the demo with the rules loaded must answer every panel's query.
func TestAgainstDemo(t *testing.T) {
	promBin := tool(t, "prometheus")
	e := startDemo(t)
	gwURLs, connURLs := e.adminURLs()

	// Prometheus first, so it sees the events below happen.
	prom := startPrometheus(t, promBin, gwURLs, connURLs)

	// The load tester drives the demo with a month of the default profile's
	// device traffic compressed into minutes; the built-in client adds the
	// errors a real service sees (and counts what got an answer).
	var traffic trafficSource = &builtinTraffic{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = traffic.Run(ctx, e.m) }()
	var ltErr error
	go func() { defer wg.Done(); ltErr = loadTesterTraffic(ctx, e.m) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if ltErr != nil && !errors.Is(ltErr, context.Canceled) {
			t.Errorf("the load tester stopped: %v", ltErr)
		}
	})
	waitUntil(t, "traffic through the demo", 30*time.Second, func() bool { return traffic.Sent() >= 50 })

	e.restartGateway(1)
	e.reloadGateway(0)
	waitUntil(t, "a connector's reconnect counted", 20*time.Second, func() bool {
		return sampleSum(t, connURLs, "cmg_connector_tunnel_reconnects_total") > 0
	})
	before := traffic.Sent()
	waitUntil(t, "traffic through the restarted gateway", 30*time.Second, func() bool { return traffic.Sent() >= before+50 })

	dashes := loadDashboards(t)
	rules := loadRules(t)
	exprs := expressions(t, dashes, rules)

	t.Run("metric names", func(t *testing.T) {
		inv := scrapeInventory(t, append(gwURLs, connURLs...))
		checkNames(t, exprs, recorded(rules), inv)
	})
	t.Run("panels", func(t *testing.T) {
		checkPanels(t, prom, dashes, recorded(rules))
	})
	t.Run("rules", func(t *testing.T) {
		checkRules(t, prom, rules)
	})
}
