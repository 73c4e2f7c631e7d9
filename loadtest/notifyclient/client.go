// Package notifyclient is a device's side of the cmg notification channel
// (DESIGN section 9): it holds one server-sent-events channel to a gateway
// (GET /cmg/v1/notifications), reconnects with jittered exponential backoff,
// moving to the next gateway instance after a failure, resumes with
// Last-Event-ID, and counts what it receives. The load tester's simulated
// devices and the end-to-end tests use it; it keeps one goroutine, one TLS
// connection and a small read buffer per device, so one process holds
// thousands.
package notifyclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Path is the channel's path on the gateway.
const Path = "/cmg/v1/notifications"

// Config configures one device's channel.
type Config struct {
	// URLs are the gateway instances' device URLs (https://host:port). The
	// client starts with the first and moves to the next after a failure or a
	// dropped channel (a load balancer would do the same).
	URLs []string
	// Query is added to the channel's URL (e.g. "role=<RoleID>" to name the
	// device's site).
	Query string
	// TLS holds the roots that verify the gateway and, for certificate devices,
	// the client certificate. ServerName defaults to the URL's host.
	TLS *tls.Config
	// Token is sent as a bearer token (devices without a client certificate).
	Token string
	// Dial opens the TCP connection; nil means a net.Dialer bound to LocalAddr.
	// The load tester counts socket bytes here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// LocalAddr is the source address (e.g. 127.x.y.z, so that thousands of
	// devices on one host do not exhaust one address's ports).
	LocalAddr net.IP
	// MinBackoff and MaxBackoff bound the jittered exponential backoff between
	// attempts. Zero means 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout bounds dial, TLS and the response header. Zero means 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout: a channel on which nothing (not even a heartbeat) arrives
	// for this long is dropped and reopened. Zero means 75s (three of the
	// gateway's default heartbeats).
	IdleTimeout time.Duration
	// ReadBufferSize is the socket read buffer. Zero means 2 KiB.
	ReadBufferSize int
	// LastEventID resumes from an earlier run.
	LastEventID string
	// OnEvent gets every event, from the client's goroutine.
	OnEvent func(Event)
	// OnConnect is called each time a channel opens (status 200).
	OnConnect func(url string)
}

// Stats are what a client did so far.
type Stats struct {
	Connects    int64  `json:"connects"`   // channels opened (200)
	Failures    int64  `json:"failures"`   // attempts that failed before a channel opened
	Drops       int64  `json:"drops"`      // open channels that ended
	Events      int64  `json:"events"`     // events dispatched
	Heartbeats  int64  `json:"heartbeats"` // comment lines
	Connected   bool   `json:"connected"`
	LastEventID string `json:"last_event_id,omitempty"`
	LastStatus  int    `json:"last_status,omitempty"`
	LastError   string `json:"last_error,omitempty"`
}

// Client holds one device's channel.
type Client struct {
	cfg     Config
	targets []target

	connects, failures, drops, events, heartbeats atomic.Int64
	connected                                     atomic.Bool

	mu         sync.Mutex
	lastID     string
	lastStatus int
	lastErr    string
}

type target struct {
	url, addr, host, requestURI string
}

// New checks the configuration.
func New(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("notifyclient: no gateway URL")
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, errors.New("notifyclient: MaxBackoff is below MinBackoff")
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 75 * time.Second
	}
	if cfg.ReadBufferSize == 0 {
		cfg.ReadBufferSize = 2 << 10
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{}
	}
	if strings.ContainsAny(cfg.Token, "\r\n") || strings.ContainsAny(cfg.LastEventID, "\r\n") {
		return nil, errors.New("notifyclient: the token and last event id must be one line")
	}
	c := &Client{cfg: cfg, lastID: cfg.LastEventID}
	for _, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("notifyclient: %q is not an https://host[:port] URL", raw)
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		}
		ru := strings.TrimSuffix(u.EscapedPath(), "/") + Path
		if cfg.Query != "" {
			ru += "?" + cfg.Query
		}
		c.targets = append(c.targets, target{url: raw, addr: addr, host: u.Host, requestURI: ru})
	}
	return c, nil
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Connects: c.connects.Load(), Failures: c.failures.Load(), Drops: c.drops.Load(),
		Events: c.events.Load(), Heartbeats: c.heartbeats.Load(), Connected: c.connected.Load(),
		LastEventID: c.lastID, LastStatus: c.lastStatus, LastError: c.lastErr,
	}
}

// Connected reports whether the channel is open now.
func (c *Client) Connected() bool { return c.connected.Load() }

// Run holds the channel until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	attempt, next := 0, 0
	for ctx.Err() == nil {
		t := c.targets[next]
		opened, retryAfter, err := c.session(ctx, t)
		if ctx.Err() != nil {
			return nil
		}
		if opened {
			attempt = 0
		}
		c.mu.Lock()
		if err != nil {
			c.lastErr = err.Error()
		}
		c.mu.Unlock()
		next = (next + 1) % len(c.targets)
		d := c.backoff(attempt)
		attempt++
		if retryAfter > d {
			d = min(retryAfter, c.cfg.MaxBackoff)
		}
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil
		case <-tm.C:
		}
	}
	return nil
}

// backoff is MinBackoff doubled per attempt up to MaxBackoff, of which a random
// half is taken away, so that devices dropped together come back spread out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MaxBackoff
	if attempt < 30 {
		d = min(c.cfg.MinBackoff<<attempt, c.cfg.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// session opens one channel and reads it until it ends. opened reports whether
// the gateway answered 200.
func (c *Client) session(ctx context.Context, t target) (opened bool, retryAfter time.Duration, err error) {
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	conn, err := c.dial(hctx, t)
	cancel()
	if err != nil {
		c.failures.Add(1)
		return false, 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c.mu.Lock()
	lastID := c.lastID
	c.mu.Unlock()
	var req strings.Builder
	req.WriteString("GET " + t.requestURI + " HTTP/1.1\r\nHost: " + t.host +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-store\r\nUser-Agent: cmg-notifyclient\r\n")
	if c.cfg.Token != "" {
		req.WriteString("Authorization: Bearer " + c.cfg.Token + "\r\n")
	}
	if lastID != "" {
		req.WriteString("Last-Event-ID: " + lastID + "\r\n")
	}
	req.WriteString("\r\n")
	_ = conn.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if _, err := io.WriteString(conn, req.String()); err != nil {
		c.failures.Add(1)
		return false, 0, fmt.Errorf("send request: %w", err)
	}
	br := bufio.NewReaderSize(conn, c.cfg.ReadBufferSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.failures.Add(1)
		return false, 0, fmt.Errorf("read response: %w", err)
	}
	c.mu.Lock()
	c.lastStatus = resp.StatusCode
	c.mu.Unlock()
	if resp.StatusCode != http.StatusOK {
		c.failures.Add(1)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = time.Duration(s) * time.Second
		}
		return false, retryAfter, fmt.Errorf("gateway answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		c.failures.Add(1)
		return false, 0, fmt.Errorf("gateway answered %q, not an event stream", ct)
	}
	src := br
	if len(resp.TransferEncoding) > 0 {
		src = bufio.NewReaderSize(resp.Body, c.cfg.ReadBufferSize)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	c.connects.Add(1)
	c.connected.Store(true)
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect(t.url)
	}
	defer func() {
		c.connected.Store(false)
		c.drops.Add(1)
	}()
	p := NewParser(src, lastID)
	p.OnComment = func() {
		c.heartbeats.Add(1)
		_ = conn.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout))
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout))
		ev, err := p.Next()
		c.mu.Lock()
		c.lastID = p.LastEventID()
		c.mu.Unlock()
		if err != nil {
			return true, p.Retry(), fmt.Errorf("channel ended: %w", err)
		}
		c.events.Add(1)
		if c.cfg.OnEvent != nil {
			c.cfg.OnEvent(ev)
		}
	}
}

// dial opens TCP and TLS.
func (c *Client) dial(ctx context.Context, t target) (net.Conn, error) {
	dial := c.cfg.Dial
	if dial == nil {
		d := &net.Dialer{}
		if c.cfg.LocalAddr != nil {
			d.LocalAddr = &net.TCPAddr{IP: c.cfg.LocalAddr}
		}
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	cfg := c.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(t.addr)
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS with %s: %w", t.addr, err)
	}
	return tc, nil
}
