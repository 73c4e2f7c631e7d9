package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"

	"github.com/cmg-gateway/cmg/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testSite = "site1"
	mpID     = "72057594037927939"
	supID    = "72057594037927940"
)

// testPKI is a dev PKI with a gateway certificate and connector certificates.
type testPKI struct {
	dir   pki.Dir
	roots *x509.CertPool
}

func newTestPKI(t testing.TB, connectors ...string) *testPKI {
	t.Helper()
	d := pki.Dir(t.TempDir())
	now := time.Now()
	if err := pki.Init(d, pki.InitOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	for _, c := range connectors {
		if err := pki.IssueConnector(d, testSite, c, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := pki.IssueConnector(d, "othersite", "intruder", now); err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: d, roots: x509.NewCertPool()}
	p.roots.AppendCertsFromPEM(mustRead(t, d.Path(pki.RootCert)))
	return p
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *testPKI) serverTLS(t testing.TB) *tls.Config {
	cert, err := tls.LoadX509KeyPair(p.dir.Path(pki.GatewayCert), p.dir.Path(pki.GatewayKey))
	if err != nil {
		t.Fatal(err)
	}
	cas := x509.NewCertPool()
	cas.AppendCertsFromPEM(mustRead(t, p.dir.Path(pki.ConnectorCACert)))
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: cas, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

func (p *testPKI) clientTLS(t testing.TB, name string) *tls.Config {
	cert, err := tls.LoadX509KeyPair(p.dir.Path(pki.ConnectorCert(name)), p.dir.Path(pki.ConnectorKey(name)))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: p.roots, MinVersion: tls.VersionTLS12}
}

// staticAllow allows cp1 and cp2 of site1 to publish the MP and the SUP.
type staticAllow struct{}

func (staticAllow) AllowConnector(site, name string) error {
	if site == testSite && (name == "cp1" || name == "cp2") {
		return nil
	}
	return fmt.Errorf("%s/%s not allowed", site, name)
}

func (staticAllow) AllowRoute(site, _ string, r Route) error {
	if site == testSite && (r.RoleID == mpID || r.RoleID == supID) {
		return nil
	}
	return fmt.Errorf("role %s not allowed", r.RoleID)
}

// gatewaySide runs a Server on a loopback listener.
type gatewaySide struct {
	srv    *Server
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

func startServer(t testing.TB, p *testPKI) *gatewaySide {
	t.Helper()
	srv, err := NewServer(ServerConfig{Instance: 0, Instances: 1, TLS: p.serverTLS(t), Allow: staticAllow{},
		PingInterval: 50 * time.Millisecond, PingTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gatewaySide{srv: srv, ln: ln, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(g.done); _ = srv.Serve(ctx, ln, TransportTCPTLS) }()
	t.Cleanup(g.stop)
	return g
}

func (g *gatewaySide) stop() {
	g.cancel()
	<-g.done
}

func (g *gatewaySide) port() int { return g.ln.Addr().(*net.TCPAddr).Port }

// connectorSide runs a Client serving an echo handler.
type connectorSide struct {
	c      *Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startClient(t testing.TB, p *testPKI, name string, port int, routes []Route) *connectorSide {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %d", name, r.Method, r.URL.Path, len(body))
	})
	c, err := NewClient(ClientConfig{Name: name, Site: testSite, Routes: routes, Host: "127.0.0.1", Instances: 1,
		TCPPortBase: port, TLS: p.clientTLS(t, name), PingInterval: 50 * time.Millisecond, PingTimeout: 5 * time.Second,
		Backoff: Backoff{Initial: 10 * time.Millisecond, RecentCap: 50 * time.Millisecond, Cap: 50 * time.Millisecond, RecentWindow: time.Minute}}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cs := &connectorSide{c: c, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(cs.done); _ = c.Run(ctx) }()
	t.Cleanup(cs.stop)
	return cs
}

func (c *connectorSide) stop() {
	c.cancel()
	<-c.done
}

var mpRoute = Route{RoleID: mpID, Kind: ManagementPoint, Auth: []string{AuthMutual, AuthServer}}

// eventually polls cond until it holds or the deadline passes. The tunnel has no
// event to wait on from outside, so the tests poll its state.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roundTrip sends one request on a fresh stream of s.
func roundTrip(t *testing.T, s *Session, method, path, body string) string {
	t.Helper()
	st, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	defer st.Close()
	req, _ := http.NewRequest(method, "http://cmg"+path, strings.NewReader(body))
	req.Close = true
	if err := req.Write(st); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestSessionServesStreams(t *testing.T) {
	p := newTestPKI(t, "cp1", "cp2")
	g := startServer(t, p)
	startClient(t, p, "cp1", g.port(), []Route{mpRoute, {RoleID: "999", Kind: ManagementPoint, Auth: []string{AuthMutual}}})
	reg := g.srv.Registry()
	eventually(t, "cp1's session", func() bool { return reg.Pick(AuthMutual, mpID) != nil })
	s := reg.Pick(AuthMutual, mpID)
	if got := len(s.Routes()); got != 1 {
		t.Errorf("accepted routes = %d, want 1 (role 999 is not allowed)", got)
	}
	if reg.Serves(AuthMutual, "999") {
		t.Error("the gateway routes role 999, which the allow-list refuses")
	}
	for i, body := range []string{"", "hello", strings.Repeat("x", 300000)} {
		got := roundTrip(t, s, "CCM_POST", "/CCM_Proxy_MutualAuth/"+mpID+"/ccm_system/request", body)
		want := fmt.Sprintf("cp1 CCM_POST /CCM_Proxy_MutualAuth/%s/ccm_system/request %d", mpID, len(body))
		if got != want {
			t.Errorf("request %d: got %q, want %q", i, got, want)
		}
	}
	eventually(t, "an RTT measurement", func() bool { return s.RTT() > 0 })
}

func TestRoundRobinAndRetryExclusion(t *testing.T) {
	p := newTestPKI(t, "cp1", "cp2")
	g := startServer(t, p)
	startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	startClient(t, p, "cp2", g.port(), []Route{mpRoute})
	reg := g.srv.Registry()
	eventually(t, "two sessions", func() bool { return reg.Len() == 2 })
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		seen[reg.Pick(AuthMutual, mpID).Name]++
	}
	if seen["cp1"] != 5 || seen["cp2"] != 5 {
		t.Errorf("round robin gave %v, want 5 each", seen)
	}
	first := reg.Pick(AuthMutual, mpID)
	if other := reg.Pick(AuthMutual, mpID, first); other == nil || other == first {
		t.Errorf("excluding %s gave %v, want the other connector", first.Name, other)
	}
	if none := reg.Pick(AuthMutual, mpID, reg.Sessions()...); none != nil {
		t.Errorf("excluding both gave %s, want none", none.Name)
	}
}

func TestHealthOrdersButNeverStops(t *testing.T) {
	p := newTestPKI(t, "cp1", "cp2")
	g := startServer(t, p)
	c1 := startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	startClient(t, p, "cp2", g.port(), []Route{mpRoute})
	reg := g.srv.Registry()
	eventually(t, "two sessions", func() bool { return reg.Len() == 2 })
	eventually(t, "cp1 connected", func() bool { return c1.c.Connected() == 1 })
	c1.c.SetHealth([]RoleHealth{{RoleID: mpID, Healthy: false, Detail: "down"}})
	eventually(t, "cp1's MP reported down", func() bool {
		for _, s := range reg.Sessions() {
			if s.Name == "cp1" && !s.Healthy(mpID) {
				return true
			}
		}
		return false
	})
	for i := 0; i < 6; i++ {
		if got := reg.Pick(AuthMutual, mpID).Name; got != "cp2" {
			t.Fatalf("pick %d went to %s, want the healthy cp2", i, got)
		}
	}
	var cp2 *Session
	for _, s := range reg.Sessions() {
		if s.Name == "cp2" {
			cp2 = s
		}
	}
	if got := reg.Pick(AuthMutual, mpID, cp2); got == nil || got.Name != "cp1" {
		t.Errorf("with cp2 excluded got %v, want the unhealthy cp1 (health never stops forwarding)", got)
	}
}

func TestConnectorNotAllowed(t *testing.T) {
	p := newTestPKI(t)
	g := startServer(t, p)
	// "intruder" of "othersite" has a valid connector certificate but is not in
	// the allow-list.
	h := http.NotFoundHandler()
	c, err := NewClient(ClientConfig{Name: "intruder", Site: "othersite", Routes: []Route{mpRoute}, Host: "127.0.0.1", Instances: 1,
		TCPPortBase: g.port(), TLS: p.clientTLS(t, "intruder"),
		Backoff: Backoff{Initial: 10 * time.Millisecond, RecentCap: 20 * time.Millisecond, Cap: 20 * time.Millisecond, RecentWindow: time.Minute}}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "the refusal", func() bool {
		return strings.Contains(c.Status()[0].LastError, "not in the gateway's allow-list") ||
			strings.Contains(c.Status()[0].LastError, "not allowed")
	})
	if n := g.srv.Registry().Len(); n != 0 {
		t.Errorf("registry holds %d sessions, want 0", n)
	}
}

func TestHelloMustMatchCertificate(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	conn, err := tls.Dial("tcp", g.ln.Addr().String(), withServerName(p.clientTLS(t, "cp1")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := WriteHello(conn, &Hello{Name: "cp2", Site: testSite, Routes: []Route{mpRoute}}); err != nil {
		t.Fatal(err)
	}
	ack, err := ReadAck(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ack.Error, "certificate is site1/cp1") {
		t.Errorf("ack error %q, want an identity mismatch", ack.Error)
	}
}

func withServerName(c *tls.Config) *tls.Config {
	c.ServerName = "127.0.0.1"
	return c
}

func TestConnectorOpenedStreamIsRefused(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	conn, err := tls.Dial("tcp", g.ln.Addr().String(), withServerName(p.clientTLS(t, "cp1")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := WriteHello(conn, &Hello{Name: "cp1", Site: testSite, Routes: []Route{mpRoute}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAck(conn); err != nil {
		t.Fatal(err)
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	mux, err := yamux.Server(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	ctrl, err := mux.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	st, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = st.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Errorf("reading the stream the connector opened: got %v, want EOF (the gateway closed it)", err)
	}
}

func TestReconnectReplacesSession(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	c := startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	reg := g.srv.Registry()
	eventually(t, "a session", func() bool { return reg.Len() == 1 })
	first := reg.Sessions()[0]
	c.stop()
	eventually(t, "the session to end", func() bool { return reg.Len() == 0 })
	startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	eventually(t, "a new session", func() bool { return reg.Len() == 1 && reg.Sessions()[0] != first })
}

func TestGatewayRestartReconnects(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	port := g.port()
	c := startClient(t, p, "cp1", port, []Route{mpRoute})
	eventually(t, "connected", func() bool { return c.c.Connected() == 1 })
	g.stop()
	eventually(t, "disconnected", func() bool { return c.c.Connected() == 0 })
	// A new gateway on the same port: the connector comes back by itself.
	srv, err := NewServer(ServerConfig{Instance: 0, Instances: 1, TLS: p.serverTLS(t), Allow: staticAllow{}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ctx, ln, TransportTCPTLS) }()
	defer func() { cancel(); wg.Wait() }()
	eventually(t, "reconnected", func() bool { return c.c.Connected() == 1 && srv.Registry().Len() == 1 })
}

// drainSetup is one connector's session with a stream open on it, for the
// drain tests.
func drainSetup(t *testing.T) (*gatewaySide, *connectorSide, *Session, *yamux.Stream) {
	t.Helper()
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	c := startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	reg := g.srv.Registry()
	eventually(t, "a session", func() bool { return reg.Len() == 1 })
	s := reg.Sessions()[0]
	st, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	return g, c, s, st
}

func TestConnectorDrain(t *testing.T) {
	// A request in flight when the drain starts must finish.
	g, c, s, st := drainSetup(t)
	reg := g.srv.Registry()
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- c.c.Drain(ctx)
	}()
	eventually(t, "the gateway to see the drain", s.Draining)
	if got := reg.Pick(AuthMutual, mpID); got != nil {
		t.Errorf("a draining connector was picked")
	}
	if _, err := s.Open(); !errors.Is(err, ErrDraining) {
		t.Errorf("Open on a draining session: got %v, want ErrDraining", err)
	}
	req, _ := http.NewRequest("GET", "http://cmg/CCM_Proxy_MutualAuth/"+mpID+"/x", nil)
	req.Close = true
	if err := req.Write(st); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), req)
	if err != nil {
		t.Fatalf("the in-flight request failed during the drain: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	st.Close()
	s.Release()
	if want := "cp1 GET /CCM_Proxy_MutualAuth/" + mpID + "/x 0"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	if err := <-drained; err != nil {
		t.Errorf("drain: %v", err)
	}
	eventually(t, "the session to close", func() bool { return reg.Len() == 0 })
}

// TestDrainEndsWhenTheGatewayGoes: a connector draining while a stream is
// open, whose gateway then goes away, is done at once; it does not wait out
// its deadline for a stream that can no longer finish.
func TestDrainEndsWhenTheGatewayGoes(t *testing.T) {
	g, c, s, st := drainSetup(t)
	defer s.Release()
	defer st.Close()
	// The request is written but its stream stays open: the drain waits.
	if _, err := io.WriteString(st, "GET /CCM_Proxy_MutualAuth/"+mpID+"/x HTTP/1.1\r\nHost: cmg\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	drained := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { drained <- c.c.Drain(ctx) }()
	eventually(t, "the gateway to see the drain", s.Draining)
	g.stop()
	if err := <-drained; err != nil {
		t.Errorf("drain after the gateway went: %v, want nil (not its deadline)", err)
	}
}
