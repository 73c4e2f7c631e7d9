package tunnel

import (
	"math/rand/v2"
	"time"
)

// Backoff is the connector's re-dial schedule (DESIGN section 5): Initial doubling
// to RecentCap for an instance that was up within RecentWindow, to Cap otherwise,
// each delay jittered by ±Jitter.
type Backoff struct {
	Initial      time.Duration
	RecentCap    time.Duration
	Cap          time.Duration
	RecentWindow time.Duration
	// Jitter is the fraction each delay may move either way (0.2 = ±20 %).
	Jitter float64
}

// DefaultBackoff is DESIGN section 5's schedule.
func DefaultBackoff() Backoff {
	return Backoff{
		Initial:      100 * time.Millisecond,
		RecentCap:    time.Second,
		Cap:          30 * time.Second,
		RecentWindow: time.Minute,
		Jitter:       0.2,
	}
}

// Delay is the wait before attempt n (0 for the first retry), given when the
// instance was last up (zero if never) and the time now. r supplies jitter in
// [0,1); nil means no jitter.
func (b Backoff) Delay(n int, lastUp, now time.Time, r func() float64) time.Duration {
	limit := b.Cap
	if !lastUp.IsZero() && now.Sub(lastUp) < b.RecentWindow {
		limit = b.RecentCap
	}
	d := b.Initial
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if r != nil && b.Jitter > 0 {
		f := 1 + b.Jitter*(2*r()-1)
		d = time.Duration(float64(d) * f)
	}
	return d
}

// jitterSource returns a random float in [0,1).
func jitterSource() func() float64 { return rand.Float64 }
