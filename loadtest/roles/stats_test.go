package roles

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientConn counts what the client side of a connection sends and receives.
type clientConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// exchange writes a raw request and reads its response completely; it returns the
// bytes the client received for it (the counting conn's delta minus what bufio
// holds ahead, which is nothing, since the server sends only this response).
func exchange(t *testing.T, cc *clientConn, br *bufio.Reader, raw string) (sent, recv int64) {
	t.Helper()
	in0, out0 := cc.in.Load(), cc.out.Load()
	if _, err := io.WriteString(cc, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return cc.out.Load() - out0, cc.in.Load() - in0 - int64(br.Buffered())
}

// waitClosed waits until the server has closed every connection it accepted, the
// point after which its byte counts are final.
func waitClosed(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server did not close its connections")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStatsExactBytes(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientConn{Conn: conn}
	br := bufio.NewReader(cc)
	body := strings.Repeat("z", 5000)
	reqs := []struct {
		role Role
		raw  string
	}{
		{RoleMP, "GET /mp/SMS_MP/.sms_aut?MPLIST HTTP/1.1\r\nHost: mp\r\nUser-Agent: ccmhttp\r\n\r\n"},
		{RoleSUP, "POST /sup/cmg-sink HTTP/1.1\r\nHost: sup\r\nContent-Length: 5000\r\n\r\n" + body},
		{RoleMP, "CCM_POST /mp/cmg-echo HTTP/1.1\r\nHost: mp\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{RoleOther, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
		{RoleSUP, "GET /sup/nothing HTTP/1.1\r\nHost: sup\r\nConnection: close\r\n\r\n"},
	}
	want := map[Role]RoleStats{}
	for _, r := range reqs {
		sent, recv := exchange(t, cc, br, r.raw)
		if sent != int64(len(r.raw)) {
			t.Fatalf("client wrote %d bytes, want %d", sent, len(r.raw))
		}
		w := want[r.role]
		w.Requests++
		w.WireBytesReceived += uint64(sent)
		w.WireBytesSent += uint64(recv)
		want[r.role] = w
	}
	_, _ = io.Copy(io.Discard, br) // the server closes after Connection: close
	conn.Close()
	waitClosed(t, s)
	st := s.Stats()
	for _, role := range allRoles {
		got, w := st.Roles[role], want[role]
		if got.Requests != w.Requests || got.WireBytesReceived != w.WireBytesReceived || got.WireBytesSent != w.WireBytesSent {
			t.Errorf("%s: got %d requests, %d B in, %d B out; want %d, %d, %d", role,
				got.Requests, got.WireBytesReceived, got.WireBytesSent, w.Requests, w.WireBytesReceived, w.WireBytesSent)
		}
	}
	if st.WireBytesReceived != uint64(cc.out.Load()) || st.WireBytesSent != uint64(cc.in.Load()) {
		t.Errorf("totals: got %d in / %d out, want %d / %d", st.WireBytesReceived, st.WireBytesSent, cc.out.Load(), cc.in.Load())
	}
	if got := st.Roles[RoleSUP].BodyBytesReceived; got != 5000 {
		t.Errorf("SUP body bytes received: got %d, want 5000", got)
	}
	if st.Connections != 1 || st.Open != 0 {
		t.Errorf("connections: got %d accepted, %d open; want 1, 0", st.Connections, st.Open)
	}
}

func TestStatsTLS(t *testing.T) {
	pki := newTestPKI(t)
	cfg := DefaultConfig()
	cfg.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey}
	s, base := startServer(t, cfg)
	raw, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientConn{Conn: raw}
	conn := tls.Client(cc, &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	if _, err := io.WriteString(conn, "GET /mp/cmg-echo HTTP/1.1\r\nHost: mp\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	var e EchoReply
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Role != RoleMP {
		t.Fatalf("got %+v, %v", e, err)
	}
	_, _ = io.Copy(io.Discard, conn) // to the server's close_notify and EOF
	waitClosed(t, s)
	sent, recv := cc.out.Load(), cc.in.Load()
	conn.Close()
	mp := s.Stats().Roles[RoleMP]
	// Everything on the socket, handshake included, is the management point's.
	if mp.WireBytesReceived != uint64(sent) || mp.WireBytesSent != uint64(recv) {
		t.Errorf("got %d B in / %d B out, want %d / %d", mp.WireBytesReceived, mp.WireBytesSent, sent, recv)
	}
}

func TestStatsEndpoint(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	do(t, c, "GET", base+"/mp/SMS_MP/.sms_aut?MPLIST", nil, nil)
	_, b := do(t, c, "GET", base+"/roles/stats", nil, nil)
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Roles[RoleMP].Requests != 1 || st.Kinds[kindMPList] != 1 || st.Roles[RoleMP].WireBytesReceived == 0 {
		t.Errorf("got %s, want one MP list request counted with its bytes", b)
	}
}
