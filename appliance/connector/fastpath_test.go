package connector

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/tunnel"
)

// fastEnv is a connector's stream handler with one role (a real HTTP server)
// and nothing else: streams are loopback TCP connections.
type fastEnv struct {
	h    *streamHandler
	role *httptest.Server
	// seen is what the role received last.
	seen chan *http.Request
	body chan []byte
}

func newFastEnv(t *testing.T, roleHandler http.HandlerFunc) *fastEnv {
	t.Helper()
	e := &fastEnv{seen: make(chan *http.Request, 10), body: make(chan []byte, 10)}
	e.role = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.seen <- r
		e.body <- b
		roleHandler(w, r)
	}))
	t.Cleanup(e.role.Close)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rc := RoleConfig{ID: "72057594037927939", Kind: tunnel.ManagementPoint, URL: e.role.URL + "/mp",
		Auth: []string{tunnel.AuthMutual}, Timeout: 2 * time.Second}
	r, err := newRole(rc, &certHolder{}, m, newBufferPool(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := &Connector{roles: map[string]*role{rc.ID: r}, m: m, log: slog.New(slog.DiscardHandler)}
	e.h = &streamHandler{c: c, next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot) // the long way, which these tests must not take
	})}
	return e
}

// do sends a raw request on a fresh stream and returns the response and its body.
func (e *fastEnv) do(t *testing.T, raw string) (*http.Response, []byte) {
	t.Helper()
	client, server := tcpPair(t)
	handed := make(chan net.Conn, 1)
	go func() { handed <- e.h.ServeStream(server, 0) }()
	if _, err := io.WriteString(client, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(client), &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	if c := <-handed; c != nil {
		t.Fatalf("the request was handed to net/http")
	}
	return resp, body
}

func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

const mpPath = "/CCM_Proxy_MutualAuth/72057594037927939"

func TestFastPathForwards(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 256)
	e := newFastEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Role", "mp")
		switch r.URL.Path {
		case "/mp/chunked":
			w.Write(blob[:100])
			w.(http.Flusher).Flush()
			w.Write(blob[100:])
		case "/mp/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
			w.Write(blob)
		}
	})
	tests := []struct {
		name     string
		raw      string
		status   int
		body     []byte
		chunked  bool
		wantPath string
		wantBody string
	}{
		{"GET with a length", "GET " + mpPath + "/a/b?x=1&y=%2F HTTP/1.1\r\nHost: cmg\r\nX-Forwarded-For: 203.0.113.7\r\nCmg-Device-Id: dev1\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n",
			200, blob, false, "/mp/a/b?x=1&y=%2F", ""},
		{"chunked answer", "GET " + mpPath + "/chunked HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n", 200, blob, true, "/mp/chunked", ""},
		{"HEAD", "HEAD " + mpPath + "/x HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n", 200, nil, false, "/mp/x", ""},
		{"204", "GET " + mpPath + "/empty HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n", 204, nil, false, "/mp/empty", ""},
		{"CCM_POST with a length", "CCM_POST " + mpPath + "/ccm_system/request HTTP/1.1\r\nHost: cmg\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", 200, blob, false, "/mp/ccm_system/request", "hello"},
		{"chunked upload", "BITS_POST " + mpPath + "/up HTTP/1.1\r\nHost: cmg\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200, blob, false, "/mp/up", "abcde"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, tt.raw)
			if resp.StatusCode != tt.status || !bytes.Equal(body, tt.body) {
				t.Fatalf("got %d with %d bytes, want %d with %d", resp.StatusCode, len(body), tt.status, len(tt.body))
			}
			if got := len(resp.TransferEncoding) > 0; got != tt.chunked {
				t.Errorf("chunked = %v, want %v", got, tt.chunked)
			}
			if resp.Header.Get("X-Role") != "mp" {
				t.Errorf("the role's header did not pass: %v", resp.Header)
			}
			if tt.name == "HEAD" && resp.ContentLength != int64(len(blob)) {
				t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, len(blob))
			}
			r := <-e.seen
			if got := <-e.body; string(got) != tt.wantBody {
				t.Errorf("the role got body %q, want %q", got, tt.wantBody)
			}
			if r.RequestURI != tt.wantPath {
				t.Errorf("the role got %s, want %s", r.RequestURI, tt.wantPath)
			}
			if tt.name == "GET with a length" {
				if r.Header.Get("X-Hop") != "" || r.Header.Get("Connection") != "" {
					t.Errorf("hop-by-hop headers reached the role: %v", r.Header)
				}
				if r.Header.Get("X-Forwarded-For") != "203.0.113.7" || r.Header.Get("Cmg-Device-Id") != "dev1" {
					t.Errorf("forwarding or identity headers lost: %v", r.Header)
				}
				if r.Header.Get("User-Agent") != "" {
					t.Errorf("the role got a User-Agent the device did not send: %q", r.Header.Get("User-Agent"))
				}
				if r.Host != strings.TrimPrefix(e.role.URL, "http://") {
					t.Errorf("Host %q, want the role's", r.Host)
				}
			}
		})
	}
}

func TestFastPathSurvivesAClosedKeptConnection(t *testing.T) {
	e := newFastEnv(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	req := "GET " + mpPath + "/x HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n"
	for i := range 3 {
		resp, body := e.do(t, req)
		<-e.seen
		<-e.body
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: got %d %q, want 200 ok", i, resp.StatusCode, body)
		}
		e.role.CloseClientConnections() // the role drops the connection the pool keeps
	}
}

func TestFastPathAnswersRoleFailures(t *testing.T) {
	release := make(chan struct{})
	e := newFastEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/mp/slow" {
			<-release // past the role's 2 s timeout
		}
	})
	resp, body := e.do(t, "GET "+mpPath+"/slow HTTP/1.1\r\nHost: cmg\r\nCmg-Request-Id: r1\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("CMG-Error") != "BackendTimeout" || !bytes.Contains(body, []byte(`"request_id":"r1"`)) {
		t.Errorf("slow role: got %d %q %s, want 504 BackendTimeout with the request id", resp.StatusCode, resp.Header.Get("CMG-Error"), body)
	}
	close(release)
	e.role.Close()
	resp, _ = e.do(t, "GET "+mpPath+"/x HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("CMG-Error") != "BackendUnavailable" {
		t.Errorf("role down: got %d %q, want 502 BackendUnavailable", resp.StatusCode, resp.Header.Get("CMG-Error"))
	}
}

func TestFastRoleLeavesTheRestToNetHTTP(t *testing.T) {
	e := newFastEnv(t, func(http.ResponseWriter, *http.Request) {})
	tests := []struct {
		name string
		hdr  string
		fast bool
	}{
		{"role request", "GET " + mpPath + "/x HTTP/1.1\r\nHost: cmg\r\n\r\n", true},
		{"server auth prefix the role does not accept", "GET /CCM_Proxy_ServerAuth/72057594037927939/x HTTP/1.1\r\n\r\n", false},
		{"unknown role", "GET /CCM_Proxy_MutualAuth/1/x HTTP/1.1\r\n\r\n", false},
		{"notification replay", "GET /cmg/v1/notifications/replay HTTP/1.1\r\n\r\n", false},
		{"escaped role id", "GET /CCM_Proxy_MutualAuth/7205759403792793%39/x HTTP/1.1\r\n\r\n", false},
		{"not origin form", "GET http://x/ HTTP/1.1\r\n\r\n", false},
	}
	for _, tt := range tests {
		if got := e.h.c.fastRole([]byte(tt.hdr)) != nil; got != tt.fast {
			t.Errorf("%s: fast = %v, want %v", tt.name, got, tt.fast)
		}
	}
	for _, tt := range []struct {
		name  string
		lines string
		want  bool
	}{
		{"not sampled", "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n", true},
		{"sampled", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n", false},
		{"none", "Host: cmg\r\n", false},
	} {
		if got := headerNotSampled([]byte(tt.lines)); got != tt.want {
			t.Errorf("%s: headerNotSampled = %v, want %v", tt.name, got, tt.want)
		}
	}
	// A request the fast path leaves goes to net/http whole.
	client, server := tcpPair(t)
	raw := "GET /cmg/v1/notifications/replay HTTP/1.1\r\nHost: cmg\r\n\r\n"
	go io.WriteString(client, raw)
	c := e.h.ServeStream(server, 0)
	if c == nil {
		t.Fatal("the replay request was not handed to net/http")
	}
	got := make([]byte, len(raw))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != raw {
		t.Errorf("net/http would read %q (%v), want the whole request", got, err)
	}
}
