package connector

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// rolePool keeps idle keep-alive connections to one role for the fast path
// (fastpath.go): what http.Transport does for the reverse proxy, without its
// two goroutines and channel hand-offs per request. A connection is taken for
// one exchange and put back only when the exchange ended cleanly.
type rolePool struct {
	addr    string      // host:port
	tls     *tls.Config // nil for http
	dialer  net.Dialer
	maxIdle int
	idleFor time.Duration

	mu        sync.Mutex
	idle      []*roleConn // most recently used last
	lastSweep time.Time
}

// roleConn is one connection to a role with its buffers.
type roleConn struct {
	net.Conn
	raw    syscall.RawConn // of the TCP socket, for the liveness peek
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
}

const roleBufferSize = 32 << 10

// trustIdle is how long a connection may idle and be taken without the
// liveness peek (a syscall): a role closes idle connections after seconds,
// not within this, and a bodiless request on one it closed is sent again.
const trustIdle = 500 * time.Millisecond

// newFastPool is the pool of a role at base (http or https).
func newFastPool(base *url.URL, tlsCfg *tls.Config) *rolePool {
	host, port := base.Hostname(), base.Port()
	if base.Scheme != "https" {
		tlsCfg = nil
	}
	if port == "" {
		port = "80"
		if tlsCfg != nil {
			port = "443"
		}
	}
	return newRolePool(net.JoinHostPort(host, port), tlsCfg)
}

func newRolePool(addr string, tlsCfg *tls.Config) *rolePool {
	return &rolePool{
		addr:    addr,
		tls:     tlsCfg,
		dialer:  net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle: 256,
		idleFor: 90 * time.Second,
	}
}

// get returns an idle connection that is still open, or dials a new one.
func (p *rolePool) get(ctx context.Context) (*roleConn, error) {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if idle := now.Sub(c.idleAt); idle < p.idleFor && (idle < trustIdle || c.alive()) {
			c.reused = true
			return c, nil
		}
		c.Close()
	}
	return p.dial(ctx)
}

func (p *rolePool) dial(ctx context.Context) (*roleConn, error) {
	raw, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	c := &roleConn{Conn: raw}
	if sc, ok := raw.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	if p.tls != nil {
		cfg := p.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(p.addr)
		}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		c.Conn = tc
	}
	c.br = bufio.NewReaderSize(c.Conn, roleBufferSize)
	c.bw = bufio.NewWriterSize(c.Conn, roleBufferSize)
	return c, nil
}

// put keeps c for the next request, or closes it when the pool is full.
func (p *rolePool) put(c *roleConn) {
	now := time.Now()
	c.idleAt = now
	p.mu.Lock()
	var stale []*roleConn
	if now.Sub(p.lastSweep) > p.idleFor/3 {
		// Close what idled too long, so a quiet role's connections do not
		// linger half-closed until the next request.
		p.lastSweep = now
		keep := p.idle[:0]
		for _, ic := range p.idle {
			if now.Sub(ic.idleAt) >= p.idleFor {
				stale = append(stale, ic)
			} else {
				keep = append(keep, ic)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
	}
	if len(p.idle) >= p.maxIdle {
		stale = append(stale, c)
	} else {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
}

// alive reports whether an idle connection is still open: nothing may be
// readable on it (a role that closed it has sent a FIN, or a TLS alert).
func (c *roleConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	ok := false
	err := c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = errors.Is(err, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && ok
}
