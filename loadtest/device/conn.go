package device

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Counters are what every device's sockets did, summed: the device leg of
// egress is Read (bytes received at the devices' sockets, TLS included).
type Counters struct {
	Read, Written   atomic.Int64
	Connections     atomic.Int64 // TLS connections established
	Resumed         atomic.Int64 // of which resumed a session
	ConnectFailures atomic.Int64 // dials or handshakes that failed
	Open            atomic.Int64 // connections open now

	chainOnce sync.Once
	chain     []*x509.Certificate
}

// ServerChain is the certificate chain the first full handshake showed.
func (c *Counters) ServerChain() []*x509.Certificate { return c.chain }

// countingConn counts a socket's bytes, for the connection and for all devices.
type countingConn struct {
	net.Conn
	all           *Counters
	read, written int64 // owned by the one goroutine using the connection
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read += int64(n)
		c.all.Read.Add(int64(n))
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.written += int64(n)
		c.all.Written.Add(int64(n))
	}
	return n, err
}

// conn is one device connection to a gateway: TLS over a counting socket.
type conn struct {
	raw     *countingConn
	tls     *tls.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	target  *Target
	resumed bool
	// idleSince is the simulated time the connection went idle.
	idleSince time.Time
	timer     *time.Timer
	broken    bool
}

// dial opens a TLS connection to t.
func dial(ctx context.Context, t *Target, cfg *tls.Config, all *Counters) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: nc, all: all}
	c := cfg.Clone()
	if c.ServerName == "" {
		c.ServerName = t.ServerName
	}
	tc := tls.Client(cc, c)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, &tlsError{err}
	}
	st := tc.ConnectionState()
	all.Connections.Add(1)
	all.Open.Add(1)
	if st.DidResume {
		all.Resumed.Add(1)
	} else {
		all.chainOnce.Do(func() { all.chain = st.PeerCertificates })
	}
	return &conn{
		raw: cc, tls: tc, target: t, resumed: st.DidResume,
		br: bufio.NewReaderSize(tc, 16<<10), bw: bufio.NewWriterSize(tc, 16<<10),
	}, nil
}

type tlsError struct{ err error }

func (e *tlsError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// closeGracefully says close_notify, reads what the gateway still sends (its
// own close_notify) until it closes, then closes: so every byte the gateway
// wrote is read and counted, and the device leg equals the gateway's own
// client-listener wire counter.
func (c *conn) closeGracefully() {
	if c.tls == nil {
		return
	}
	defer c.raw.all.Open.Add(-1)
	if !c.broken {
		_ = c.tls.SetDeadline(time.Now().Add(3 * time.Second))
		if c.tls.CloseWrite() == nil {
			_, _ = io.Copy(io.Discard, c.br)
		}
	}
	_ = c.raw.Conn.Close()
	c.tls = nil
}

// abort closes without the exchange of close_notify (a broken connection).
func (c *conn) abort() {
	c.broken = true
	c.closeGracefully()
}

// isNetClosed reports errors that mean the peer closed or reset the connection.
func isNetClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}
