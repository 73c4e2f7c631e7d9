package device

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Spreading modes of the Balancer.
const (
	// SpreadConnection picks a target for each new connection, as an L4 load
	// balancer hashing the 5-tuple does (Azure's default): a device's
	// connections land on any instance.
	SpreadConnection = "connection"
	// SpreadDevice keeps a device on one target while it is up, as a load
	// balancer with client-IP affinity does.
	SpreadDevice = "device"
)

// Target is one gateway instance's device listener.
type Target struct {
	URL        string
	Addr       string // host:port
	ServerName string

	downUntil atomic.Int64 // unix nanos; 0 when up
	fails     atomic.Int32
	dials     atomic.Int64
	failures  atomic.Int64
}

// Balancer spreads devices' connections over the targets as a load balancer
// would and keeps failed targets out for a jittered, growing backoff (100 ms
// doubling to 30 s), so devices reconnect elsewhere when a gateway goes away
// and come back when it returns.
type Balancer struct {
	targets []*Target
	mode    string
	mu      sync.Mutex
	rnd     *rand.Rand
}

// NewBalancer parses the target URLs (https://host:port).
func NewBalancer(urls []string, mode string, seed uint64) (*Balancer, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("device: no target")
	}
	if mode != SpreadConnection && mode != SpreadDevice {
		return nil, fmt.Errorf("device: spread must be %s or %s, not %q", SpreadConnection, SpreadDevice, mode)
	}
	b := &Balancer{mode: mode, rnd: rand.New(rand.NewPCG(seed, 7))}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("device: target %q is not an https://host:port URL", raw)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "443"
		}
		b.targets = append(b.targets, &Target{URL: raw, Addr: net.JoinHostPort(host, port), ServerName: host})
	}
	return b, nil
}

// Targets returns the targets.
func (b *Balancer) Targets() []*Target { return b.targets }

// pick chooses a target for a new connection of device dev. When every target
// is backing off it returns the one that comes back first and how long to wait.
func (b *Balancer) pick(dev int) (*Target, time.Duration) {
	now := time.Now().UnixNano()
	n := len(b.targets)
	start := 0
	if b.mode == SpreadDevice {
		start = dev % n
	} else {
		b.mu.Lock()
		start = b.rnd.IntN(n)
		b.mu.Unlock()
	}
	var soonest *Target
	for i := range n {
		t := b.targets[(start+i)%n]
		d := t.downUntil.Load()
		if d <= now {
			return t, 0
		}
		if soonest == nil || d < soonest.downUntil.Load() {
			soonest = t
		}
	}
	return soonest, time.Duration(soonest.downUntil.Load() - now)
}

func (b *Balancer) failed(t *Target) {
	t.failures.Add(1)
	n := t.fails.Add(1)
	d := 100 * time.Millisecond << min(n-1, 9)
	d = min(d, 30*time.Second)
	b.mu.Lock()
	d = d/2 + time.Duration(b.rnd.Int64N(int64(d/2)+1))
	b.mu.Unlock()
	t.downUntil.Store(time.Now().Add(d).UnixNano())
}

func (b *Balancer) succeeded(t *Target) {
	t.dials.Add(1)
	if t.fails.Load() != 0 {
		t.fails.Store(0)
		t.downUntil.Store(0)
	}
}

// TargetStats are a target's connection counts.
type TargetStats struct {
	URL      string `json:"url"`
	Dials    int64  `json:"connections"`
	Failures int64  `json:"connect_failures"`
}

// Stats returns each target's counts.
func (b *Balancer) Stats() []TargetStats {
	out := make([]TargetStats, len(b.targets))
	for i, t := range b.targets {
		out[i] = TargetStats{URL: t.URL, Dials: t.dials.Load(), Failures: t.failures.Load()}
	}
	return out
}
