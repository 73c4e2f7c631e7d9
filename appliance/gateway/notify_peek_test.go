//go:build unix

package gateway

import (
	"net"
	"testing"
	"time"
)

type unwrapConn struct{ net.Conn }

func (c unwrapConn) Unwrap() net.Conn { return c.Conn }

type rawConn struct{ net.Conn }

func (c rawConn) Raw() net.Conn { return c.Conn }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// eventually polls peerGone until it reports want (the peer's FIN or data takes
// a moment to arrive).
func eventually(t *testing.T, c net.Conn, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		gone, checked := peerGone(c)
		if !checked {
			t.Fatal("peerGone could not reach the socket")
		}
		if gone == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("peerGone = %v, want %v", gone, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPeerGone(t *testing.T) {
	tests := []struct {
		name  string
		wrap  func(net.Conn) net.Conn
		leave func(client net.Conn)
	}{
		{"close", func(c net.Conn) net.Conn { return c }, func(c net.Conn) { c.Close() }},
		{"data after the request", func(c net.Conn) net.Conn { return c }, func(c net.Conn) { _, _ = c.Write([]byte{21}) }},
		{"under a byte counter", func(c net.Conn) net.Conn { return unwrapConn{c} }, func(c net.Conn) { c.Close() }},
		{"under PROXY protocol and a byte counter", func(c net.Conn) net.Conn { return rawConn{unwrapConn{c}} }, func(c net.Conn) { c.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			c := tc.wrap(server)
			if gone, checked := peerGone(c); gone || !checked {
				t.Fatalf("a quiet, open peer: gone=%v checked=%v, want false, true", gone, checked)
			}
			tc.leave(client)
			eventually(t, c, true)
		})
	}
	t.Run("no socket", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if gone, checked := peerGone(a); gone || checked {
			t.Errorf("net.Pipe: gone=%v checked=%v, want false, false", gone, checked)
		}
	})
	t.Run("peeking consumes nothing", func(t *testing.T) {
		server, client := tcpPair(t)
		_, _ = client.Write([]byte("x"))
		eventually(t, server, true)
		buf := make([]byte, 1)
		_ = server.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := server.Read(buf); n != 1 || buf[0] != 'x' {
			t.Errorf("read %q, %v after the peek, want the byte still there", buf[:n], err)
		}
	})
}
