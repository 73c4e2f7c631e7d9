package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// deviceAddr is the loopback address the simulated devices connect from, so
// that the gateway's logs can show it is their address, not the load
// balancer's (127.0.0.1), that PROXY protocol carried.
const deviceAddr = "127.0.0.2"

// steadyDevices is the steady stream of devices of the rolling-restart tests: a
// plain Go client loop (the load tester may replace it) in which each device
// polls its policy (GET) and, every fourth request, uploads a small report
// (CCM_POST, which the gateway never retries), sequentially on kept-alive
// connections from deviceAddr, opening a new one every 25 requests.
func steadyDevices(t *testing.T, m *demo.Manifest, baseURL string, devices int) *load {
	t.Helper()
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(m.ClientCertFile, m.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(deviceAddr)}, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for d := 0; d < devices; d++ {
		tr := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 1, DisableCompression: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			body := bytes.Repeat([]byte("inventory "), 200)
			for i := 0; ctx.Err() == nil; i++ {
				var req *http.Request
				if i%4 == 3 {
					req, _ = http.NewRequestWithContext(ctx, "CCM_POST", baseURL+mpPrefix+"/cmg-sink", bytes.NewReader(body))
				} else {
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, baseURL+m.ExamplePath, nil)
				}
				// A device opens a new connection now and then, as real
				// clients do between their polling cycles.
				req.Close = i%25 == 24
				resp, err := c.Do(req)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						if err != nil {
							l.failures = append(l.failures, req.Method+": "+err.Error())
						} else {
							l.failures = append(l.failures, req.Method+": "+resp.Status+" "+resp.Header.Get("CMG-Error"))
						}
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

// haproxy is a running HAProxy in front of the demo's gateways.
type haproxy struct {
	deviceURL string
	tunnelTCP int // instance i's TCP-TLS tunnel at tunnelTCP+i
}

// startHAProxy runs Debian's HAProxy as the L4 load balancer of DESIGN section
// 4: one device frontend balancing over the instances, health-checked on
// /readyz of each instance's admin listener, and one tunnel frontend per
// instance with no health check (tunnel ports are never gated on /readyz); both
// send PROXY protocol v2.
func startHAProxy(t *testing.T, m *demo.Manifest) *haproxy {
	t.Helper()
	base := m.PortBase
	dev := freeConsecutive(t, 1)
	h := &haproxy{deviceURL: fmt.Sprintf("https://127.0.0.1:%d", dev), tunnelTCP: freeConsecutive(t, len(m.Gateways))}
	var c strings.Builder
	fmt.Fprintf(&c, `global
	maxconn 4000
defaults
	mode tcp
	timeout connect 2s
	timeout client 10m
	timeout server 10m
	retries 3
	option redispatch
	log stdout format raw local0 info
	option tcplog
frontend devices
	bind 127.0.0.1:%d
	default_backend gateways
backend gateways
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server inter 200ms fall 1 rise 2 send-proxy-v2 source 127.0.0.1
`, dev)
	for _, g := range m.Gateways {
		fmt.Fprintf(&c, "\tserver gw%d 127.0.0.1:%d check port %d\n", g.Instance, base+443+g.Instance, base+1100+g.Instance)
	}
	for _, g := range m.Gateways {
		fmt.Fprintf(&c, "frontend tunnel%d\n\tbind 127.0.0.1:%d\n\tdefault_backend tunnel%d\nbackend tunnel%d\n\tserver gw%d 127.0.0.1:%d send-proxy-v2 source 127.0.0.1\n",
			g.Instance, h.tunnelTCP+g.Instance, g.Instance, g.Instance, g.Instance, base+2140+g.Instance)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("haproxy", "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			printTail(t, "haproxy", logPath, 40)
		}
	})
	waitFor(t, "HAProxy to listen", 10*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", dev), time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return h
}

// setupBehindHAProxy rewrites the demo's configs for a service behind HAProxy:
// gateways trust PROXY v2 from 127.0.0.1 and drain with the given delay;
// connectors reach each instance's tunnel through HAProxy.
func setupBehindHAProxy(t *testing.T, e *procEnv, h *haproxy, delay time.Duration) {
	t.Helper()
	for i, g := range e.m.Gateways {
		cfg := demo.GatewayConfig(e.m, i)
		cfg.ProxyProtocol.TrustedCIDRs = []string{"127.0.0.1/32"}
		cfg.Drain = gateway.DrainConfig{Delay: delay, Grace: 20 * time.Second}
		writeYAMLTo(t, g.Config, cfg)
	}
	for j, c := range e.m.Connectors {
		cfg := demo.ConnectorConfig(e.m, j)
		cfg.Gateway.TCPPortBase = h.tunnelTCP
		cfg.Gateway.Transports = []string{"tcp_tls"}
		cfg.DrainTimeout = 20 * time.Second
		writeYAMLTo(t, c.Config, cfg)
	}
}

func readyz(adminURL string) int {
	resp, err := httpGetQuick(adminURL + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRollingRestartBehindHAProxy restarts both gateway instances one after
// the other, then both connectors, under a steady stream of devices through
// HAProxy: no request may fail, and the gateways log the devices' own address.
func TestRollingRestartBehindHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts four processes under load")
	}
	e := newProcEnv(t)
	h := startHAProxy(t, e.m)
	const delay = 1500 * time.Millisecond
	setupBehindHAProxy(t, e, h, delay)
	gws, conns := e.startAll()
	for _, g := range e.m.Gateways {
		waitFor(t, "HAProxy to see "+g.AdminURL+" ready", 10*time.Second, func() bool { return readyz(g.AdminURL) == 200 })
	}
	l := steadyDevices(t, e.m, h.deviceURL, 8)
	defer l.stop()
	waitFor(t, "steady traffic", 15*time.Second, func() bool { return l.ok.Load() > 300 })

	served := func(i int) float64 {
		return metricValue(scrape(t, e.m.Gateways[i].AdminURL), "cmg_gateway_requests_total", "code", "200")
	}
	for i, p := range gws {
		g := e.m.Gateways[i]
		sent := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		waitFor(t, fmt.Sprintf("gateway %d's /readyz to turn 503", i), 5*time.Second, func() bool { return readyz(g.AdminURL) == 503 })
		notReady := time.Since(sent)
		<-p.exited
		took := time.Since(sent)
		t.Logf("gateway %d: /readyz 503 after %v, exited after %v (delay %v)", i, notReady.Round(time.Millisecond), took.Round(time.Millisecond), delay)
		if notReady > time.Second {
			t.Errorf("gateway %d's /readyz turned 503 %v after SIGTERM, want at once", i, notReady)
		}
		if took < delay {
			t.Errorf("gateway %d exited %v after SIGTERM, before its drain delay %v", i, took, delay)
		}
		before := l.ok.Load()
		waitFor(t, "traffic through the other instance", 10*time.Second, func() bool { return l.ok.Load() > before+200 })
		p.restart()
		waitFor(t, fmt.Sprintf("gateway %d back with both connectors", i), 20*time.Second, func() bool {
			return e.sessions(g.AdminURL) == 2 && readyz(g.AdminURL) == 200
		})
		waitFor(t, fmt.Sprintf("gateway %d to take devices again", i), 15*time.Second, func() bool { return served(i) > 50 })
	}
	for j, p := range conns {
		c := e.m.Connectors[j]
		p.kill(syscall.SIGTERM)
		before := l.ok.Load()
		waitFor(t, "traffic through the other connector", 10*time.Second, func() bool { return l.ok.Load() > before+200 })
		p.restart()
		for _, g := range e.m.Gateways {
			waitFor(t, c.Name+" back on "+g.AdminURL, 20*time.Second, func() bool {
				st, ok := tryStatus(g.AdminURL)
				return ok && st.has(c.Name)
			})
		}
		waitFor(t, c.Name+" to serve again", 15*time.Second, func() bool {
			return metricValue(scrape(t, c.AdminURL), "cmg_connector_requests_total") > 50
		})
	}
	l.stop()
	t.Logf("requests through HAProxy during the rolling restarts: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the rolling restarts, want 0; first: %v", n, l.failures)
	}

	// The gateways saw the devices' address through PROXY v2 ...
	for i, p := range gws {
		data, err := os.ReadFile(p.log)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"remote":"`+deviceAddr+`:`)) {
			t.Errorf("gateway %d's access log never shows the device address %s", i, deviceAddr)
		}
		if strings.Contains(accessRemotes(data), "127.0.0.1:") {
			t.Errorf("gateway %d logged HAProxy's address for a device request", i)
		}
	}
	// ... and passed it on to the role.
	resp, err := deviceClientFrom(t, e.m).Get(h.deviceURL + mpPrefix + "/cmg-echo")
	if err != nil {
		t.Fatal(err)
	}
	var echo roles.EchoReply
	err = jsonDecode(resp.Body, &echo)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := echo.Headers["X-Forwarded-For"]; len(got) != 1 || got[0] != deviceAddr {
		t.Errorf("X-Forwarded-For at the role: %v, want [%s]", got, deviceAddr)
	}
}

// accessRemotes is the remote addresses of the access-log lines.
func accessRemotes(log []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(log), "\n") {
		if !strings.Contains(line, `"msg":"access"`) {
			continue
		}
		if i := strings.Index(line, `"remote":"`); i >= 0 {
			rest := line[i+len(`"remote":"`):]
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				b.WriteString(rest[:j] + " ")
			}
		}
	}
	return b.String()
}

// deviceClientFrom is one device connecting from deviceAddr.
func deviceClientFrom(t *testing.T, m *demo.Manifest) *http.Client {
	c := deviceClient(t, m, true)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(deviceAddr)}}).DialContext
	tr.TLSClientConfig.ServerName = "127.0.0.1"
	return c
}

// writeYAMLTo writes v as YAML to path.
func writeYAMLTo(t *testing.T, path string, v any) {
	t.Helper()
	data, err := configfile.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// freeConsecutive returns the first of n consecutive loopback ports that are
// free now.
func freeConsecutive(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		// Below the kernel's ephemeral range, where a busy machine's outgoing
		// connections do not take every other port.
		first := 10000 + rand.IntN(20000)
		ok := true
		for p := first; p < first+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok && first+n <= 65535 {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
