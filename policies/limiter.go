package policies

import (
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// limiterShards spreads devices over independently locked shards so that
// concurrent requests of different devices rarely wait for each other.
const limiterShards = 16

// concurrencyRetryAfter is the Retry-After given to a device over its in-flight
// limit: its other requests usually finish within a second or two.
const concurrencyRetryAfter = time.Second

// Limiter enforces the per-device limits of policy decisions: a token-bucket
// request rate (golang.org/x/time/rate) and a count of in-flight requests. State is
// kept per (rule, device), so each rule's limit is its own budget, and survives
// policy reloads: an entry whose rule's limits changed is adjusted in place on
// its next request.
//
// Memory is bounded: at most maxEntries entries, least recently used evicted
// first, idle ones (nothing in flight, bucket refilled, unused for the idle time)
// dropped as new devices arrive or on Sweep. Evicting an entry that still has
// requests in flight (only under pressure, when no idle one is near the end of
// the queue) forgets those requests for the concurrency count, and an evicted
// bucket starts full again: the limits then err towards serving.
type Limiter struct {
	now      func() time.Time
	idle     time.Duration
	perShard int
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu         sync.Mutex // guards the fields below and the entries' mutable fields
	m          map[limitKey]*limitEntry
	head, tail *limitEntry // most and least recently used
}

type limitKey struct{ rule, device string }

type limitEntry struct {
	key        limitKey
	prev, next *limitEntry
	lim        *rate.Limiter // nil without a rate limit
	rps        float64       // lim's limit and burst, so Acquire need not ask it
	burst      int
	inflight   int
	lastUsed   time.Time
}

// NewLimiter returns a Limiter that tracks at most maxEntries (rule, device)
// pairs and drops an entry once it has been idle for idle. now is the clock; nil
// means time.Now.
func NewLimiter(maxEntries int, idle time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	per := max(1, maxEntries/limiterShards)
	l := &Limiter{now: now, idle: idle, perShard: per, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[limitKey]*limitEntry)
	}
	return l
}

// Permit is an admitted request's hold on its device's concurrency. Release it
// exactly once when the request ends. The zero Permit holds nothing.
type Permit struct {
	e *limitEntry
	s *limiterShard
	l *Limiter
}

// Release gives back the request's in-flight slot.
func (p Permit) Release() {
	if p.e == nil {
		return
	}
	now := p.l.now()
	p.s.mu.Lock()
	if p.e.inflight > 0 {
		p.e.inflight--
	}
	p.e.lastUsed = now
	p.s.mu.Unlock()
}

// Acquire admits one request of device under decision d's limits, or returns a
// RateLimited *httperror.Error with a Retry-After. A decision without rate or
// concurrency limit is admitted without tracking. It does not allocate for a
// device it already tracks.
func (l *Limiter) Acquire(d *Decision, device string) (Permit, error) {
	if d.RequestsPerSecond <= 0 && d.Concurrency <= 0 {
		return Permit{}, nil
	}
	now := l.now()
	s := &l.shards[maphash.String(l.seed, device)%limiterShards]
	key := limitKey{rule: d.Rule, device: device}
	s.mu.Lock()
	e := s.m[key]
	if e == nil {
		e = l.insert(s, key, now)
	} else {
		s.moveToFront(e)
	}
	e.configure(d, now)
	if d.Concurrency > 0 && e.inflight >= d.Concurrency {
		s.mu.Unlock()
		return Permit{}, limitError(d, "in-flight", concurrencyRetryAfter)
	}
	if e.lim != nil && !e.lim.AllowN(now, 1) {
		wait := retryAfter(e.lim.TokensAt(now), d.RequestsPerSecond)
		s.mu.Unlock()
		return Permit{}, limitError(d, "request rate", wait)
	}
	e.inflight++
	e.lastUsed = now
	s.mu.Unlock()
	return Permit{e: e, s: s, l: l}, nil
}

// retryAfter is how long until the bucket holds one token again.
func retryAfter(tokens, perSecond float64) time.Duration {
	missing := 1 - tokens
	if missing <= 0 || perSecond <= 0 {
		return time.Second
	}
	// Whole milliseconds, rounded up past float noise: Retry-After is in seconds
	// anyway, and a device told to come back early is refused again.
	ms := math.Ceil(missing/perSecond*1e3 - 1e-6)
	return time.Duration(max(ms, 1)) * time.Millisecond
}

func limitError(d *Decision, what string, wait time.Duration) error {
	e := httperror.New(httperror.RateLimited, "the device is over the "+what+" limit of policy rule "+strconv.Quote(d.Rule))
	e.RetryAfter = wait
	return e
}

// configure makes the entry's bucket follow the decision's rate limit, keeping
// its tokens when only the numbers change (a reload).
func (e *limitEntry) configure(d *Decision, now time.Time) {
	switch {
	case d.RequestsPerSecond <= 0:
		e.lim = nil
	case e.lim == nil:
		e.lim = rate.NewLimiter(rate.Limit(d.RequestsPerSecond), d.Burst) // starts full
	default:
		if e.rps != d.RequestsPerSecond {
			e.lim.SetLimitAt(now, rate.Limit(d.RequestsPerSecond))
		}
		if e.burst != d.Burst {
			e.lim.SetBurstAt(now, d.Burst)
		}
	}
	e.rps, e.burst = d.RequestsPerSecond, d.Burst
}

// idleAt reports whether dropping the entry at now loses nothing: no request in
// flight, unused for the idle time, and its bucket full again.
func (e *limitEntry) idleAt(now time.Time, idle time.Duration) bool {
	if e.inflight > 0 || now.Sub(e.lastUsed) < idle {
		return false
	}
	return e.lim == nil || e.lim.TokensAt(now) >= float64(e.burst)
}

// insert adds a new entry at the front of the shard, first dropping a couple of
// idle entries from the back (an amortised sweep) and, at capacity, the least
// recently used entry with nothing in flight among the last few.
func (l *Limiter) insert(s *limiterShard, key limitKey, now time.Time) *limitEntry {
	for i := 0; i < 2 && s.tail != nil && s.tail.idleAt(now, l.idle); i++ {
		s.remove(s.tail)
	}
	if len(s.m) >= l.perShard {
		victim := s.tail
		for e, i := s.tail, 0; e != nil && i < 8; e, i = e.prev, i+1 {
			if e.inflight == 0 {
				victim = e
				break
			}
		}
		s.remove(victim)
	}
	e := &limitEntry{key: key, lastUsed: now}
	s.m[key] = e
	s.pushFront(e)
	return e
}

// Sweep drops every idle entry and returns how many it dropped. The Engine runs it
// periodically; Acquire also drops idle entries as new devices arrive.
func (l *Limiter) Sweep() int {
	now := l.now()
	dropped := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for e := s.tail; e != nil; {
			prev := e.prev
			if e.idleAt(now, l.idle) {
				s.remove(e)
				dropped++
			}
			e = prev
		}
		s.mu.Unlock()
	}
	return dropped
}

// Len returns how many (rule, device) entries are tracked.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (s *limiterShard) pushFront(e *limitEntry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *limiterShard) unlink(e *limitEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *limiterShard) moveToFront(e *limitEntry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (s *limiterShard) remove(e *limitEntry) {
	s.unlink(e)
	delete(s.m, e.key)
}
