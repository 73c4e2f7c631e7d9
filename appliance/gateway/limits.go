package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/configfile"
)

// LimitsConfig bounds what devices may take of an instance (SECURITY.md): per
// source address at the client listener, and requests in flight overall. The
// source address is the real device address (after PROXY protocol); IPv6
// sources count per /64, since one host holds a whole /64.
type LimitsConfig struct {
	// MaxConnectionsPerSource bounds the open connections of one source
	// address (devices behind one NAT share it: keep it generous). 0 turns the
	// limit off. Default 1000.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source"`
	// HandshakesPerSecondPerSource and HandshakeBurstPerSource are a token
	// bucket on new connections of one source address: beyond it connections
	// are closed before TLS. 0 turns the limit off. Default 100/s, burst 200.
	HandshakesPerSecondPerSource float64 `yaml:"handshakes_per_second_per_source"`
	HandshakeBurstPerSource      int     `yaml:"handshake_burst_per_source"`
	// ExemptCIDRs are sources the per-source limits never apply to. Default
	// loopback (health checks on the host, a local load test); list the load
	// balancers here when they connect without PROXY protocol.
	ExemptCIDRs []string `yaml:"exempt_cidrs"`
	// MaxConnections bounds the open device connections of the instance (0:
	// only the descriptor limit does). Beyond it new connections are closed at
	// once, before TLS, so that a flood costs no handshake and little memory.
	MaxConnections int `yaml:"max_connections"`
	// HandshakeTimeout bounds the TLS handshake (and the PROXY protocol
	// header before it). Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// MaxInFlight bounds the device requests served at once (notification
	// channels do not count). A request beyond it waits up to QueueTimeout in
	// a queue of at most MaxQueue, then gets 503 Overloaded with Retry-After.
	// 0 turns the limit off. Default 4096, 500ms, 4096, 5s.
	MaxInFlight  int           `yaml:"max_in_flight"`
	MaxQueue     int           `yaml:"max_queue"`
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	RetryAfter   time.Duration `yaml:"retry_after"`
}

// DefaultLimitsConfig is the production default.
func DefaultLimitsConfig() LimitsConfig {
	return LimitsConfig{
		MaxConnectionsPerSource:      1000,
		HandshakesPerSecondPerSource: 100,
		HandshakeBurstPerSource:      200,
		ExemptCIDRs:                  []string{"127.0.0.0/8", "::1/128"},
		HandshakeTimeout:             10 * time.Second,
		MaxInFlight:                  4096,
		MaxQueue:                     4096,
		QueueTimeout:                 500 * time.Millisecond,
		RetryAfter:                   5 * time.Second,
	}
}

func (c *LimitsConfig) validate(ps *configfile.Problems) {
	if c.MaxConnectionsPerSource < 0 {
		ps.Addf("limits.max_connections_per_source", "must not be negative (0 turns it off)")
	}
	if c.HandshakesPerSecondPerSource < 0 {
		ps.Addf("limits.handshakes_per_second_per_source", "must not be negative (0 turns it off)")
	}
	if c.HandshakesPerSecondPerSource > 0 && c.HandshakeBurstPerSource < 1 {
		ps.Addf("limits.handshake_burst_per_source", "must be at least 1 when handshakes_per_second_per_source is set")
	}
	for i, s := range c.ExemptCIDRs {
		if _, err := netip.ParsePrefix(s); err != nil {
			ps.Addf(fmt.Sprintf("limits.exempt_cidrs[%d]", i), "%q is not a CIDR (10.0.0.0/24, 2001:db8::/64)", s)
		}
	}
	if c.MaxConnections < 0 {
		ps.Addf("limits.max_connections", "must not be negative (0 turns it off)")
	}
	if c.HandshakeTimeout <= 0 {
		ps.Addf("limits.handshake_timeout", "must be positive")
	}
	if c.MaxInFlight < 0 {
		ps.Addf("limits.max_in_flight", "must not be negative (0 turns it off)")
	}
	if c.MaxInFlight > 0 {
		if c.MaxQueue < 0 {
			ps.Addf("limits.max_queue", "must not be negative")
		}
		if c.QueueTimeout < 0 {
			ps.Addf("limits.queue_timeout", "must not be negative")
		}
		if c.RetryAfter < time.Second {
			ps.Addf("limits.retry_after", "must be at least 1s")
		}
	}
}

// Reasons a connection is refused at the client listener before TLS: the
// reason label of cmg_gateway_connections_refused_total.
const (
	refusedPerSource     = "per_source_connections"
	refusedHandshakeRate = "handshake_rate"
	refusedMaxConns      = "max_connections"
)

// limitMetrics are the metrics of the limits.
type limitMetrics struct {
	refused *prometheus.CounterVec
	queued  prometheus.Gauge
	sources prometheus.GaugeFunc
}

func (g *Gateway) newLimits() error {
	g.srcs = newSourceLimiter(g.cfg.Limits, g.now)
	g.load = newLoadLimiter(g.cfg.Limits)
	m := &limitMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmg_gateway_connections_refused_total",
			Help: "Device connections closed before TLS by a listener limit, by reason (per_source_connections, handshake_rate, max_connections).",
		}, []string{"reason"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cmg_gateway_requests_queued",
			Help: "Device requests waiting for an in-flight slot (limits.max_in_flight).",
		}),
		sources: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cmg_gateway_client_sources",
			Help: "Source addresses (IPv6: /64 prefixes) the per-source limits track.",
		}, func() float64 { return float64(g.srcs.len()) }),
	}
	for _, r := range []string{refusedPerSource, refusedHandshakeRate, refusedMaxConns} {
		m.refused.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.refused, m.queued, m.sources} {
		if err := g.prom.Register(c); err != nil {
			return err
		}
	}
	g.load.queued = m.queued
	g.lm = m
	return nil
}

// sourceKey is the address the per-source limits count: the IPv4 address, or
// the /64 of an IPv6 address.
func sourceKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(v.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip
}

// sourceLimiter holds per-source connection counts and handshake buckets. An
// entry lives while its source has connections or an unfilled bucket.
type sourceLimiter struct {
	cfg       LimitsConfig
	now       func() time.Time
	total     atomic.Int64
	mu        sync.Mutex
	m         map[netip.Addr]*sourceState
	lastSweep time.Time
	exempt    []netip.Prefix
}

type sourceState struct {
	conns  int
	tokens float64
	last   time.Time
}

func newSourceLimiter(cfg LimitsConfig, now func() time.Time) *sourceLimiter {
	return &sourceLimiter{cfg: cfg, now: now, m: make(map[netip.Addr]*sourceState), exempt: parsePrefixes(cfg.ExemptCIDRs)}
}

func (l *sourceLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// acquire admits a new connection from src, or returns the refusal reason.
// An admitted connection must be released once.
func (l *sourceLimiter) acquire(src netip.Addr) string {
	if n := l.total.Add(1); l.cfg.MaxConnections > 0 && n > int64(l.cfg.MaxConnections) {
		l.total.Add(-1)
		return refusedMaxConns
	}
	if !l.limited(src) {
		return ""
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	s := l.m[src]
	if s == nil {
		s = &sourceState{tokens: float64(l.cfg.HandshakeBurstPerSource), last: now}
		l.m[src] = s
	}
	if l.cfg.MaxConnectionsPerSource > 0 && s.conns >= l.cfg.MaxConnectionsPerSource {
		l.total.Add(-1)
		return refusedPerSource
	}
	if rate := l.cfg.HandshakesPerSecondPerSource; rate > 0 {
		s.tokens = min(float64(l.cfg.HandshakeBurstPerSource), s.tokens+now.Sub(s.last).Seconds()*rate)
		s.last = now
		if s.tokens < 1 {
			l.total.Add(-1)
			return refusedHandshakeRate
		}
		s.tokens--
	}
	s.conns++
	return ""
}

func (l *sourceLimiter) release(src netip.Addr) {
	l.total.Add(-1)
	if !l.limited(src) {
		return
	}
	l.mu.Lock()
	if s := l.m[src]; s != nil && s.conns > 0 {
		s.conns--
	}
	l.mu.Unlock()
}

// limited reports whether the per-source limits apply to src.
func (l *sourceLimiter) limited(src netip.Addr) bool {
	if l.cfg.MaxConnectionsPerSource == 0 && l.cfg.HandshakesPerSecondPerSource == 0 {
		return false
	}
	for _, p := range l.exempt {
		if p.Contains(src) {
			return false
		}
	}
	return true
}

// sweepLocked drops, at most every few seconds, the sources without
// connections whose bucket has refilled: they would start afresh anyway.
func (l *sourceLimiter) sweepLocked(now time.Time) {
	if now.Sub(l.lastSweep) < 5*time.Second {
		return
	}
	l.lastSweep = now
	full := float64(l.cfg.HandshakeBurstPerSource)
	for k, s := range l.m {
		if s.conns > 0 {
			continue
		}
		if rate := l.cfg.HandshakesPerSecondPerSource; rate > 0 && s.tokens+now.Sub(s.last).Seconds()*rate < full {
			continue
		}
		delete(l.m, k)
	}
}

// loadLimiter is the global in-flight limit with its short queue.
type loadLimiter struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	wait    time.Duration
	queued  prometheus.Gauge
}

func newLoadLimiter(cfg LimitsConfig) *loadLimiter {
	if cfg.MaxInFlight == 0 {
		return nil
	}
	return &loadLimiter{slots: make(chan struct{}, cfg.MaxInFlight), queue: int64(cfg.MaxQueue), wait: cfg.QueueTimeout}
}

// acquire takes a slot, waiting in the queue when all are taken; it returns
// false when the queue is full or the wait is over.
func (l *loadLimiter) acquire(ctx context.Context) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	if l.wait == 0 || l.waiting.Add(1) > l.queue {
		if l.wait != 0 {
			l.waiting.Add(-1)
		}
		return false
	}
	if l.queued != nil {
		l.queued.Inc()
		defer l.queued.Dec()
	}
	defer l.waiting.Add(-1)
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (l *loadLimiter) release() { <-l.slots }

// NotificationPath is the notification channel (DESIGN section 9); its
// long-lived requests never count against limits.max_in_flight.
const NotificationPath = "/cmg/v1/notifications"

// countsInFlight reports whether a device request takes an in-flight slot:
// every request but the notification channel's.
func countsInFlight(path string) bool {
	return !(len(path) >= len(NotificationPath) && strings.EqualFold(path[:len(NotificationPath)], NotificationPath) &&
		(len(path) == len(NotificationPath) || path[len(NotificationPath)] == '/' || path[len(NotificationPath)] == '?'))
}

// hardening is the gateway's state of the limits.
type hardening struct {
	srcs *sourceLimiter
	load *loadLimiter
	lm   *limitMetrics
}
