package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveHTTPS runs srv's HTTPS transport on a loopback listener.
func serveHTTPS(t *testing.T, srv *Server) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeHTTPS(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// ladderClient runs a client whose ladder is TCP-TLS on tcpPort, then HTTPS on
// httpsPort; handler serves its streams.
func ladderClient(t *testing.T, p *testPKI, tcpPort, httpsPort int, retry time.Duration, handler http.Handler) *connectorSide {
	t.Helper()
	tlsCfg := p.clientTLS(t, "cp1")
	tlsCfg.ServerName = "127.0.0.1"
	transports := []Transport{
		&TCPTLS{Host: "127.0.0.1", PortBase: tcpPort, TLS: tlsCfg},
		&HTTPS{Host: "127.0.0.1", Port: func(int) int { return httpsPort }, TLS: tlsCfg},
	}
	c, err := NewClient(ClientConfig{Name: "cp1", Site: testSite, Routes: []Route{mpRoute}, Host: "127.0.0.1", Instances: 1,
		Transports: transports, TLS: tlsCfg, PingInterval: 50 * time.Millisecond, PingTimeout: 5 * time.Second, RetryPreferred: retry,
		Backoff: Backoff{Initial: 10 * time.Millisecond, RecentCap: 50 * time.Millisecond, Cap: 50 * time.Millisecond, RecentWindow: time.Minute}}, handler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cs := &connectorSide{c: c, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(cs.done); _ = c.Run(ctx) }()
	t.Cleanup(cs.stop)
	return cs
}

func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %d", name, r.Method, r.URL.Path, len(body))
	})
}

func TestHTTPSTransportCarriesTheSession(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	httpsPort := serveHTTPS(t, g.srv)
	// TCP-TLS goes to a port where nothing listens: the ladder falls to HTTPS.
	c := ladderClient(t, p, freePort(t), httpsPort, time.Hour, echoHandler("cp1"))
	eventually(t, "a session over https", func() bool { return g.srv.Registry().Len() == 1 })
	sess := g.srv.Registry().Sessions()[0]
	if sess.Transport != TransportHTTPS {
		t.Errorf("gateway sees transport %q, want %q", sess.Transport, TransportHTTPS)
	}
	if got, want := roundTrip(t, sess, "POST", "/x", "hello"), "cp1 POST /x 5"; got != want {
		t.Errorf("round trip over https: got %q, want %q", got, want)
	}
	st := c.c.Status()[0]
	if !st.Connected || st.Transport != TransportHTTPS {
		t.Errorf("connector status: connected %v transport %q, want true %q", st.Connected, st.Transport, TransportHTTPS)
	}
}

func TestLadderMovesBackUpWithoutCuttingStreams(t *testing.T) {
	p := newTestPKI(t, "cp1")
	srv, err := NewServer(ServerConfig{Instance: 0, Instances: 1, TLS: p.serverTLS(t), Allow: staticAllow{}, PingInterval: 50 * time.Millisecond, PingTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	httpsPort := serveHTTPS(t, srv)
	tcpPort := freePort(t)
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	ladderClient(t, p, tcpPort, httpsPort, 100*time.Millisecond, handler)
	eventually(t, "a session over https", func() bool { return srv.Registry().Len() == 1 })
	old := srv.Registry().Sessions()[0]
	if old.Transport != TransportHTTPS {
		t.Fatalf("first session over %q, want %q", old.Transport, TransportHTTPS)
	}
	// A request in flight on the HTTPS session while the ladder moves up.
	slow := make(chan string, 1)
	go func() {
		st, err := old.Open()
		if err != nil {
			slow <- err.Error()
			return
		}
		defer old.Release()
		defer st.Close()
		io.WriteString(st, "GET /slow HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(st), nil)
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	eventually(t, "the slow request to be in flight", func() bool { return old.InFlight() == 1 })

	// TCP-TLS opens: the connector moves up within RetryPreferred.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln, TransportTCPTLS) }()
	defer func() { cancel(); <-done }()
	eventually(t, "the session to move up to tcp_tls", func() bool {
		s := srv.Registry().Sessions()
		return len(s) == 1 && s[0].Transport == TransportTCPTLS
	})
	if !old.Draining() {
		t.Errorf("the replaced https session takes new streams, want it draining")
	}
	if got, want := roundTrip(t, srv.Registry().Sessions()[0], "GET", "/new", ""), "done /new"; got != want {
		t.Errorf("request on the new session: got %q, want %q", got, want)
	}
	close(release)
	if got, want := <-slow, "done /slow"; got != want {
		t.Errorf("the request in flight during the move: got %q, want %q", got, want)
	}
	eventually(t, "the old session to close", func() bool { return old.closed() })
}

func TestUpgradeRequestsRefused(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	port := serveHTTPS(t, g.srv)
	cases := []struct {
		name    string
		request string
		status  int
		reason  string
	}{
		{"wrong path", "GET /other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: cmg-tunnel/1\r\n\r\n", 404, "RouteNotFound"},
		{"not a GET", "POST /cmg/v1/tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: cmg-tunnel/1\r\nContent-Length: 0\r\n\r\n", 405, "MethodNotAllowed"},
		{"no upgrade header", "GET /cmg/v1/tunnel HTTP/1.1\r\nHost: x\r\n\r\n", 400, "BadRequest"},
		{"websocket", "GET /cmg/v1/tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400, "BadRequest"},
		{"hello before 101", "GET /cmg/v1/tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: cmg-tunnel/1\r\n\r\ncmgT", 400, "BadRequest"},
		{"not HTTP", "cmgT\x01\x01\x00\x00\x00\x02{}\r\n\r\n", 400, "BadRequest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.clientTLS(t, "cp1")
			cfg.ServerName = "127.0.0.1"
			cfg.NextProtos = []string{ALPN}
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, tc.request)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("CMG-Error") != tc.reason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("CMG-Error"), tc.status, tc.reason)
			}
		})
	}
	if g.srv.Registry().Len() != 0 {
		t.Errorf("a refused upgrade registered a session")
	}
}

func TestAnalyzerSessionProbesRolesWithoutRegistering(t *testing.T) {
	p := newTestPKI(t, "cp1")
	g := startServer(t, p)
	startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	eventually(t, "cp1's session", func() bool { return g.srv.Registry().Len() == 1 })
	live := g.srv.Registry().Sessions()[0]

	tlsCfg := p.clientTLS(t, "cp1")
	tlsCfg.ServerName = "127.0.0.1"
	var mu sync.Mutex
	var probed []string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		probed = append(probed, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get(ProbeHeader))
		w.WriteHeader(http.StatusTeapot)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sup := Route{RoleID: supID, Kind: SoftwareUpdatePoint, Auth: []string{AuthServer}}
	unknown := Route{RoleID: "99", Kind: ManagementPoint, Auth: []string{AuthMutual}}
	res, err := Analyze(ctx, &TCPTLS{Host: "127.0.0.1", PortBase: g.port(), TLS: tlsCfg}, 0,
		Hello{Name: "cp1", Site: testSite, Version: "test", Routes: []Route{mpRoute, sup, unknown}}, handler, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ack.Refused) != 1 || res.Ack.Refused[0].RoleID != "99" {
		t.Errorf("refused routes %+v, want role 99 only", res.Ack.Refused)
	}
	want := []string{
		"GET /CCM_Proxy_MutualAuth/" + mpID + "/SMS_MP/.sms_aut?MPLIST 1",
		"GET /CCM_Proxy_ServerAuth/" + supID + "/selfupdate/wuident.cab 1",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(probed, "\n") != strings.Join(want, "\n") {
		t.Errorf("probes served:\n%s\nwant:\n%s", strings.Join(probed, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Probes) != 2 || res.Probes[0].Status != http.StatusTeapot || !res.Probes[0].OK() {
		t.Errorf("probe results %+v, want two answered with 418", res.Probes)
	}
	if s := g.srv.Registry().Sessions(); len(s) != 1 || s[0] != live || live.closed() {
		t.Errorf("the analyzer disturbed the live session of cp1")
	}

	// A hello naming another identity than the certificate is refused.
	other := p.clientTLS(t, "cp1")
	other.ServerName = "127.0.0.1"
	_, err = Analyze(ctx, &TCPTLS{Host: "127.0.0.1", PortBase: g.port(), TLS: other}, 0,
		Hello{Name: "cp2", Site: testSite, Version: "test", Routes: []Route{mpRoute}}, handler, nil)
	if !errors.Is(err, ErrRefused) {
		t.Errorf("a hello naming another identity: got %v, want ErrRefused", err)
	}
}

func TestProxyFromEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		target  string
		want    string
		wantErr bool
	}{
		{"unset", nil, "gw.example.com:10124", "", false},
		{"upper case", map[string]string{"HTTPS_PROXY": "http://proxy:3128"}, "gw.example.com:10124", "http://proxy:3128", false},
		{"lower case", map[string]string{"https_proxy": "proxy:3128"}, "gw.example.com:10124", "http://proxy:3128", false},
		{"with credentials", map[string]string{"HTTPS_PROXY": "http://u:secret@proxy:3128"}, "gw.example.com:443", "http://u:xxxxx@proxy:3128", false},
		{"no_proxy domain", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".example.com"}, "gw.example.com:443", "", false},
		{"no_proxy other", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "corp.local"}, "gw.example.com:443", "http://proxy:3128", false},
		{"https proxy scheme", map[string]string{"HTTPS_PROXY": "https://proxy:3128"}, "gw.example.com:443", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ProxyFromEnvironment(tc.target, func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got := p.String(); got != tc.want {
				t.Errorf("proxy %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadConnectResponse(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		status  int
		wantErr bool
	}{
		{"ok", "HTTP/1.1 200 Connection established\r\n\r\n", 200, false},
		{"ok with header", "HTTP/1.0 200 OK\r\nProxy-Agent: tinyproxy\r\n\r\n", 200, false},
		{"other 2xx", "HTTP/1.1 204 No Content\r\n\r\n", 200, false},
		{"auth required", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n", 407, false},
		{"forbidden", "HTTP/1.1 403 Forbidden\r\n\r\n", 403, false},
		{"bare LF", "HTTP/1.1 200 OK\n\n", 200, false},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, true},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", 0, true},
		{"truncated", "HTTP/1.1 200 OK\r\nX: y\r\n", 0, true},
		{"endless line", "HTTP/1.1 200 " + strings.Repeat("a", 5000) + "\r\n\r\n", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, err := ReadConnectResponse(bufio.NewReader(strings.NewReader(tc.in)))
			if (err != nil) != tc.wantErr || status != tc.status {
				t.Errorf("got %d, %v; want %d, error %v", status, err, tc.status, tc.wantErr)
			}
		})
	}
}

func FuzzReadConnectResponse(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 Connection established\r\n\r\n", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n", "HTTP/1.0 200\n\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		status, _, err := ReadConnectResponse(bufio.NewReader(io.LimitReader(strings.NewReader(string(data)), maxConnectResponse)))
		if err == nil && (status < 100 || status > 599) {
			t.Fatalf("status %d without an error", status)
		}
	})
}

func FuzzParseUpgradeRequest(f *testing.F) {
	for _, s := range []string{
		"GET /cmg/v1/tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: cmg-tunnel/1\r\n\r\n",
		"GET /cmg/v1/tunnel HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c, cmg-tunnel/1\r\nCmg-Tunnel-Transport: https_proxy\r\n\r\n",
		"POST /cmg/v1/tunnel HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(io.LimitReader(strings.NewReader(string(data)), maxUpgradeHeader), 1024)
		transport, err := ParseUpgradeRequest(br)
		if err == nil && transport != TransportHTTPS && transport != TransportProxy {
			t.Fatalf("transport %q accepted", transport)
		}
	})
}

func FuzzCheckUpgradeResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: cmg-tunnel/1\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nCMG-Error: RouteNotFound\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := CheckUpgradeResponse(data); err == nil && !strings.Contains(strings.ToLower(string(data)), "cmg-tunnel/1") {
			t.Fatalf("accepted an upgrade to something else: %q", data)
		}
	})
}
