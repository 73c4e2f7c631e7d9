package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/logging"
	"github.com/cmg-gateway/cmg/tunnel"
)

// chain is the forwarding path in one process: a gateway instance with one
// connector's tunnel (TCP-TLS on loopback), the connector and the simulated
// roles, configured as `cmg demo init` configures them (client certificates
// with CRL checks, the demo policy, access logs at info through the batched
// logger into io.Discard).
type chain struct {
	gw      *gateway.Gateway
	manif   *demo.Manifest
	peer    []*x509.Certificate
	connCtx context.Context
}

func startChain(tb testing.TB) *chain {
	tb.Helper()
	dir := tb.TempDir()
	m, err := demo.Init(dir, 20000) // ports are replaced below
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx) }()
	}
	log, flush := logging.New(io.Discard, "info")
	tb.Cleanup(flush)

	rolesSrv, err := roles.New(roles.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	rolesLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	run(func(ctx context.Context) error { return rolesSrv.Run(ctx, rolesLn) })

	gcfg := demo.GatewayConfig(m, 0)
	gcfg.Instances = 1
	gcfg.Client.Listen = "127.0.0.1:0"
	gcfg.Tunnel.Listen = "127.0.0.1:0"
	gcfg.Tunnel.HTTPSListen = ""
	gcfg.Admin.Listen = "127.0.0.1:0"
	gcfg.Content.ServeContent = false
	g, err := gateway.New(gcfg, gateway.Options{Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		tb.Fatal(err)
	}
	run(g.Run)

	ccfg := demo.ConnectorConfig(m, 0)
	ccfg.Gateway.Instances = 1
	ccfg.Gateway.TCPPortBase = g.TunnelAddr().(*net.TCPAddr).Port
	ccfg.Gateway.Transports = []string{tunnel.TransportTCPTLS}
	ccfg.Admin.Listen = "127.0.0.1:0"
	base := "http://" + rolesLn.Addr().String()
	for i := range ccfg.Roles {
		u := strings.Replace(ccfg.Roles[i].URL, "http://"+m.Roles.Listen, base, 1)
		ccfg.Roles[i].URL, ccfg.Roles[i].HealthURL = u, u+"/healthz"
	}
	c, err := connector.New(ccfg, connector.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	run(c.Run)
	deadline := time.Now().Add(10 * time.Second)
	for !g.Ready() {
		if time.Now().After(deadline) {
			tb.Fatal("the connector did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &chain{gw: g, manif: m, peer: clientChain(tb, m.ClientCertFile), connCtx: auth.WithConnCache(context.Background())}
}

func clientChain(tb testing.TB, file string) []*x509.Certificate {
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, data = pem.Decode(data); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// request is a device request as net/http hands it to the gateway: on one
// keep-alive connection (whose verified identity is cached) with the client
// certificate chain.
func (c *chain) request(method, path string, body []byte) *http.Request {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequestWithContext(c.connCtx, method, "https://localhost"+path, bytes.NewReader(body))
	} else {
		r = httptest.NewRequestWithContext(c.connCtx, method, "https://localhost"+path, nil)
	}
	r.RemoteAddr = "127.0.0.1:50000"
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: c.peer}
	return r
}

// discardWriter is a ResponseWriter that keeps the status and drops the body.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.n += len(b)
	return len(b), nil
}

// BenchmarkForward is one device request through the gateway's handler, a
// tunnel stream, the connector and the simulated role, without the device's
// TLS (the handler is called directly): a 4 KiB GET, a 64 KiB CCM_POST and a
// 64 MiB download.
func BenchmarkForward(b *testing.B) {
	c := startChain(b)
	mp := "/CCM_Proxy_MutualAuth/" + c.manif.RoleIDs[string(tunnel.ManagementPoint)]
	upload := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		want   int
	}{
		{"get4k", "GET", mp + "/cmg-blob?size=4096", nil, 4096},
		{"upload64k", "CCM_POST", mp + "/cmg-sink", upload, 0},
		{"download64m", "GET", mp + "/cmg-blob?size=67108864", nil, 64 << 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			defer reportCPU(b, cpuTime())
			if tc.body != nil {
				b.SetBytes(int64(len(tc.body)))
			} else {
				b.SetBytes(int64(tc.want))
			}
			for b.Loop() {
				clear(w.h)
				w.status, w.n = 0, 0
				c.gw.ServeHTTP(w, c.request(tc.method, tc.path, tc.body))
				if w.status != http.StatusOK || (tc.want > 0 && w.n != tc.want) {
					b.Fatalf("got status %d and %d bytes, want 200 and %d", w.status, w.n, tc.want)
				}
			}
		})
	}
}

// BenchmarkForwardParallel is BenchmarkForward's GET from many goroutines at
// once, as keep-alive devices load the gateway (64 per GOMAXPROCS).
func BenchmarkForwardParallel(b *testing.B) {
	c := startChain(b)
	path := "/CCM_Proxy_MutualAuth/" + c.manif.RoleIDs[string(tunnel.ManagementPoint)] + "/cmg-blob?size=4096"
	b.ReportAllocs()
	b.SetParallelism(64)
	b.SetBytes(4096)
	defer reportCPU(b, cpuTime())
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			w.status, w.n = 0, 0
			c.gw.ServeHTTP(w, c.request("GET", path, nil))
			if w.status != http.StatusOK || w.n != 4096 {
				b.Errorf("got status %d and %d bytes", w.status, w.n)
				return
			}
		}
	})
}

// cpuTime is the CPU time the process used so far (every part of the chain
// runs in it): with the machine shared, CPU per request is steadier than the
// wall time per request.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start as cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
