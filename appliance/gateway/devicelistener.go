package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/tunnel"
)

// The device listener (SECURITY.md) terminates TLS itself instead of leaving it
// to net/http, so that everything a device can make the gateway answer goes
// through the gateway's own code:
//
//   - per-source connection and handshake-rate limits and the global connection
//     limit, checked before TLS on the real device address (after PROXY
//     protocol), so a flood costs neither a handshake nor an HTTP server;
//   - the TLS handshake under its own timeout, counted by result; plain HTTP
//     sent to the TLS port is answered with the error contract;
//   - the HTTPS tunnel (ALPN cmg-tunnel/1) handed to the tunnel server;
//   - the connections given to net/http implement ConnectionState, so requests
//     carry r.TLS as before, and their writes pass through deviceConn, which
//     turns the few errors net/http answers on its own (malformed requests,
//     oversized headers) into the contract of DESIGN section 8.

// secureCipherSuites are the TLS 1.2 suites devices may use: forward-secret
// key exchange and AEAD only (TLS 1.3 suites are not configurable and all
// good). CBC, RSA key exchange and 3DES offers are refused.
var secureCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// harden sets what the device server needs beyond its construction: TLS 1.2
// suites, HTTP/1.1 only (no h2, no h2c, whatever a device offers), and the
// in-flight limit around the handler.
func (g *Gateway) harden(srv *http.Server) {
	srv.TLSConfig.CipherSuites = secureCipherSuites
	var p http.Protocols
	p.SetHTTP1(true)
	srv.Protocols = &p
	srv.ConnState = nil
	srv.Handler = inFlightHandler{g: g, next: srv.Handler}
}

// deviceListener is the client listener as net/http sees it: Accept returns
// device connections whose TLS handshake is done.
type deviceListener struct {
	g     *Gateway
	inner net.Listener
	tls   *tls.Config
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // the inner listener's fatal error, set before done closes
	// ctx ends the handshakes in progress when the listener closes.
	ctx    context.Context
	cancel context.CancelFunc
}

// deviceListener wraps the client listener for srv (see harden).
func (g *Gateway) deviceListener(srv *http.Server) net.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &deviceListener{g: g, inner: g.clientLn, tls: srv.TLSConfig, conns: make(chan net.Conn),
		done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go l.acceptLoop()
	return l
}

func (l *deviceListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

func (l *deviceListener) Close() error {
	l.once.Do(func() {
		l.cancel()
		close(l.done)
	})
	return l.inner.Close()
}

func (l *deviceListener) Addr() net.Addr { return l.inner.Addr() }

func (l *deviceListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if isTemporary(err) {
				// Out of descriptors and the like: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.g.log.Warn("gateway: client listener accept failed; backing off", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			l.err = err
			l.once.Do(func() { l.cancel(); close(l.done) })
			return
		}
		delay = 0
		go l.handshake(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// handshake admits one connection: limits, TLS, then either the tunnel server
// (ALPN cmg-tunnel/1) or net/http.
func (l *deviceListener) handshake(raw net.Conn) {
	g := l.g
	cfg := g.cfg.Limits
	_ = raw.SetDeadline(g.now().Add(cfg.HandshakeTimeout))
	// With PROXY protocol this reads the header, so the real address counts.
	src := sourceKey(raw.RemoteAddr())
	if reason := g.srcs.acquire(src); reason != "" {
		g.lm.refused.WithLabelValues(reason).Inc()
		g.log.Debug("gateway: device connection refused by a listener limit", "reason", reason, "remote", raw.RemoteAddr().String())
		raw.Close()
		return
	}
	g.m.conns.Inc()
	tc := &trackedConn{Conn: raw, release: func() { g.m.conns.Dec(); g.srcs.release(src) }}
	conn := tls.Server(tc, l.tls)
	if err := conn.HandshakeContext(l.ctx); err != nil {
		g.m.handshakes.WithLabelValues("failure").Inc()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			g.answerPlainHTTP(re.Conn)
		}
		g.log.Debug("gateway: device TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	switch conn.ConnectionState().NegotiatedProtocol {
	case tunnel.ALPN:
		// A connector on the shared listener: not a device, so out of the
		// device counts and limits from now on.
		tc.releaseOnce()
		countAsTunnel(raw)
		ctx := g.tx.tctx
		if ctx == nil {
			ctx = context.Background()
		}
		g.tun.Upgrade(ctx, conn)
		return
	case alpnProtocol:
		// An ACME TLS-ALPN-01 validation: the handshake was all of it.
		conn.Close()
		return
	}
	dc := &deviceConn{Conn: conn, g: g}
	select {
	case l.conns <- dc:
	case <-l.done:
		conn.Close()
	}
}

// looksLikeHTTP reports whether the first bytes of a "TLS record" are a plain
// HTTP request line.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "PROPF", "CCM_P", "BITS_", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}

// answerPlainHTTP answers a plain HTTP request on the TLS port.
func (g *Gateway) answerPlainHTTP(c net.Conn) {
	id := g.requestID()
	e := httperror.New(httperror.BadRequest, "this port speaks HTTPS only")
	_, _ = c.Write(contractResponse(nil, e, id))
	g.recordListenerError(c, e, id, 0)
}

// trackedConn releases the connection's counts and source slot once, when it
// closes (or when it leaves the device listener for the tunnel server).
type trackedConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *trackedConn) releaseOnce() { c.once.Do(c.release) }

func (c *trackedConn) Close() error {
	c.releaseOnce()
	return c.Conn.Close()
}

// Unwrap lets countAsTunnel find the wire counter below.
func (c *trackedConn) Unwrap() net.Conn { return c.Conn }

// inFlightHandler applies limits.max_in_flight to every device request but the
// notification channel's.
type inFlightHandler struct {
	g    *Gateway
	next http.Handler
}

func (h inFlightHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := h.g.load
	if l == nil || !countsInFlight(r.URL.Path) {
		h.next.ServeHTTP(w, r)
		return
	}
	if !l.acquire(r.Context()) {
		h.g.overloaded(w, r)
		return
	}
	defer l.release()
	h.next.ServeHTTP(w, r)
}

// overloaded answers 503 Overloaded, recorded like any request.
func (g *Gateway) overloaded(w http.ResponseWriter, r *http.Request) {
	x := &exchange{w: &responseWriter{ResponseWriter: w}, r: r, id: g.requestID(), start: g.now(), kindIdx: noRole}
	e := httperror.New(httperror.Overloaded, "the instance is at its in-flight limit; retry later")
	e.RetryAfter = g.cfg.Limits.RetryAfter
	if r.Context().Err() != nil {
		e = httperror.New(httperror.ClientClosed, "the device went away while queued")
	}
	g.fail(x, e)
	g.record(x)
}
