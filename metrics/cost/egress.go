package cost

import (
	"sync"
	"sync/atomic"
	"time"
)

// RateWindow is the window of the egress rate (DESIGN section 11: "the egress
// rate over 1 h").
const RateWindow = time.Hour

// rateSampleEvery is the width of the rate's time buckets: the running total is
// sampled once per bucket.
const rateSampleEvery = time.Minute

// EgressRate measures the gateway's egress in bytes per second over the last
// hour. Add is the hot path: one atomic add, safe from any goroutine. The running
// total is sampled once a minute (by Sample, which Meter.Run calls every minute
// and BytesPerSecond calls on each read), and the rate is the growth of the total
// since the newest sample at least an hour old, over the time since that sample:
// a window of 60 to 61 minutes while sampling keeps up. Until the meter has run
// for an hour there is no such sample, and the rate is the total over the time
// since the meter started. After a gap in sampling the window stretches back to
// the last sample before the gap.
type EgressRate struct {
	total atomic.Uint64
	now   func() time.Time

	mu sync.Mutex
	// samples are oldest first, at most one per minute; samples[0] is the
	// oldest still needed (or the start).
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	total uint64
}

// NewEgressRate starts measuring now (now is the clock, time.Now in production).
func NewEgressRate(now func() time.Time) *EgressRate {
	r := &EgressRate{now: now}
	r.samples = append(r.samples, rateSample{at: now()})
	return r
}

// Add counts n bytes of egress.
func (r *EgressRate) Add(n uint64) { r.total.Add(n) }

// Total is every byte counted since the start.
func (r *EgressRate) Total() uint64 { return r.total.Load() }

// Sample records the running total if this minute has no sample yet, and drops
// samples the window no longer needs.
func (r *EgressRate) Sample() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sample(r.now(), r.total.Load())
}

func (r *EgressRate) sample(now time.Time, total uint64) {
	last := r.samples[len(r.samples)-1]
	if now.Truncate(rateSampleEvery).After(last.at.Truncate(rateSampleEvery)) {
		r.samples = append(r.samples, rateSample{at: now, total: total})
	}
	// Keep the newest sample at or before now-window and everything after it.
	cut := now.Add(-RateWindow)
	drop := 0
	for drop+1 < len(r.samples) && !r.samples[drop+1].at.After(cut) {
		drop++
	}
	r.samples = append(r.samples[:0], r.samples[drop:]...)
}

// BytesPerSecond is the egress rate over the last hour (see EgressRate). It is 0
// until time has passed since the start.
func (r *EgressRate) BytesPerSecond() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now, total := r.now(), r.total.Load()
	r.sample(now, total)
	base := r.samples[0]
	elapsed := now.Sub(base.at).Seconds()
	if elapsed <= 0 || total < base.total {
		return 0
	}
	return float64(total-base.total) / elapsed
}
