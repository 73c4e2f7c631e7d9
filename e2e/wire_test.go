package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// socketCounter is the device's own count of the bytes on its sockets: every
// connection its dialer makes is wrapped, below TLS.
type socketCounter struct {
	sent, received atomic.Int64
	open           sync.WaitGroup
}

func (s *socketCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedConn{Conn: c, s: s}, nil
}

// countedConn counts what passes. Close sends the device's last bytes (TLS
// close_notify was written just before by tls.Conn.Close), half-closes, and reads
// what the gateway still sends (its own close_notify) until the gateway closes
// too: so when Close returns, both sides are done and the counts are final.
type countedConn struct {
	net.Conn
	s    *socketCounter
	once sync.Once
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.received.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.s.sent.Add(int64(n))
	return n, err
}

func (c *countedConn) Close() error {
	var err error
	c.once.Do(func() {
		defer c.s.open.Done()
		_ = c.Conn.(*net.TCPConn).CloseWrite()
		_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c.Conn)
		c.s.received.Add(n)
		err = c.Conn.Close()
	})
	return err
}

// TestWireCountersEqualDeviceSockets sends a mix of requests (small and large
// downloads, an upload, a rejected request, several connections) to one gateway
// instance and compares the client listener's wire counters with what the
// device counted on its own sockets: equal to the byte, both ways.
func TestWireCountersEqualDeviceSockets(t *testing.T) {
	e := newEnv(t, envOptions{})
	gw := e.m.Gateways[0]
	before := scrape(t, e.gws[0].admin)
	if v := metricValue(before, "cmg_gateway_wire_egress_bytes_total", "listener", "client"); v != 0 {
		t.Fatalf("client egress before any device: got %v, want 0", v)
	}

	sc := &socketCounter{}
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(e.m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(e.m.ClientCertFile, e.m.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		DialContext:        sc.dial,
		TLSClientConfig:    &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		DisableCompression: true,
	}
	client := &http.Client{Transport: tr, Timeout: time.Minute}

	var httpIn, httpOut int64 // bodies, as the device sees them
	do := func(req *http.Request, wantStatus int) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		httpIn += n
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: got %d, want %d", req.Method, req.URL.Path, resp.StatusCode, wantStatus)
		}
	}
	get := func(path string, want int) {
		req, _ := http.NewRequest(http.MethodGet, gw.ClientURL+path, nil)
		do(req, want)
	}
	get(mpPrefix+"/cmg-echo", 200)
	get(supPrefix+"/cmg-blob?size=3000000", 200)
	upload := bytes.Repeat([]byte("inventory "), 200_000)
	req, _ := http.NewRequest("CCM_POST", gw.ClientURL+mpPrefix+"/cmg-sink", bytes.NewReader(upload))
	httpOut += int64(len(upload))
	do(req, 200)
	get("/CCM_Proxy_MutualAuth/999/nowhere", 404)
	// A second connection.
	tr.CloseIdleConnections()
	get(mpPrefix+"/cmg-blob?size=70000", 200)
	tr.CloseIdleConnections()
	// A third, closed by the gateway after its answer (Connection: close). The
	// device reads to the end and closes the socket without a close_notify of
	// its own, which the gateway, gone already, would never read.
	raw, err := sc.dial(context.Background(), "tcp", strings.TrimPrefix(gw.ClientURL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	tcfg := tr.TLSClientConfig.Clone()
	tcfg.ServerName = "127.0.0.1"
	tc := tls.Client(raw, tcfg)
	fmt.Fprintf(tc, "GET %s/cmg-echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", mpPrefix)
	resp, err := io.ReadAll(tc)
	if err != nil || !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) {
		t.Fatalf("Connection: close request: %v, %.40q", err, resp)
	}
	raw.Close()
	sc.open.Wait()

	after := scrape(t, e.gws[0].admin)
	gotEgress := metricValue(after, "cmg_gateway_wire_egress_bytes_total", "listener", "client")
	gotIngress := metricValue(after, "cmg_gateway_wire_ingress_bytes_total", "listener", "client")
	if int64(gotEgress) != sc.received.Load() {
		t.Errorf("client wire egress: got %.0f, the device received %d", gotEgress, sc.received.Load())
	}
	if int64(gotIngress) != sc.sent.Load() {
		t.Errorf("client wire ingress: got %.0f, the device sent %d", gotIngress, sc.sent.Load())
	}
	// The HTTP-level counters sit beside them: smaller, by TLS's overhead.
	httpEgress := metricValue(after, "cmg_gateway_egress_bytes_total", "peer", "client")
	httpIngress := metricValue(after, "cmg_gateway_ingress_bytes_total", "peer", "client")
	if !(httpEgress > float64(httpIn) && httpEgress < gotEgress) {
		t.Errorf("HTTP-level egress %.0f: want above the bodies (%d) and below the wire (%.0f)", httpEgress, httpIn, gotEgress)
	}
	if !(httpIngress > float64(httpOut) && httpIngress < gotIngress) {
		t.Errorf("HTTP-level ingress %.0f: want above the bodies (%d) and below the wire (%.0f)", httpIngress, httpOut, gotIngress)
	}
	// The tunnel listener counted the connectors' side.
	if v := metricValue(after, "cmg_gateway_wire_egress_bytes_total", "listener", "tunnel"); v < float64(len(upload)) {
		t.Errorf("tunnel wire egress: got %.0f, want at least the upload forwarded", v)
	}
	t.Logf("device sockets: received %d, sent %d; HTTP level: egress %.0f, ingress %.0f (TLS overhead %.1f%% / %.1f%%)",
		sc.received.Load(), sc.sent.Load(), httpEgress, httpIngress,
		100*(gotEgress-httpEgress)/gotEgress, 100*(gotIngress-httpIngress)/gotIngress)
}
