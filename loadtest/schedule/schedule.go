// Package schedule is the load tester's open-loop arrival schedule on a
// compressible clock: each device's classes occur periodically from a random
// phase (the steady state of devices that have run for long), jittered around
// their slots, at simulated times that do not depend on how fast the gateway
// answers (no coordinated omission). A time scale K runs K simulated seconds
// per wall second, so a month runs in minutes.
package schedule

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// Clock maps wall time to simulated time: sim = start + (wall - wallStart) * scale.
type Clock struct {
	wallStart time.Time
	simStart  time.Time
	scale     float64
}

// NewClock starts a clock at wall time now, showing simulated time simStart.
func NewClock(now, simStart time.Time, scale float64) *Clock {
	return &Clock{wallStart: now, simStart: simStart, scale: scale}
}

// Scale is simulated seconds per wall second.
func (c *Clock) Scale() float64 { return c.scale }

// Now is the simulated time now.
func (c *Clock) Now() time.Time { return c.SimAt(time.Now()) }

// SimAt is the simulated time at wall time w.
func (c *Clock) SimAt(w time.Time) time.Time {
	return c.simStart.Add(time.Duration(float64(w.Sub(c.wallStart)) * c.scale))
}

// WallAt is the wall time at simulated time s.
func (c *Clock) WallAt(s time.Time) time.Time {
	return c.wallStart.Add(time.Duration(float64(s.Sub(c.simStart)) / c.scale))
}

// Wall converts a simulated duration to wall time.
func (c *Clock) Wall(sim time.Duration) time.Duration { return time.Duration(float64(sim) / c.scale) }

// Elapsed is the simulated time since the start.
func (c *Clock) Elapsed() time.Duration { return c.Now().Sub(c.simStart) }

// Series is one device's occurrences of one class: slot k is at
// phase + k*period, moved by up to ±jitter/2 periods. It starts in the steady
// state: slots from before the start whose jitter moves them after it occur,
// those that land before it do not, so the first minutes see the same rate as
// any other (no burst of every device at once).
type Series struct {
	period time.Duration
	jitter float64
	phase  time.Duration
	k      int64
	rnd    *rand.Rand
}

// NewSeries starts a series with a phase drawn in [0, period).
func NewSeries(period time.Duration, jitter float64, seed uint64) *Series {
	r := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	return &Series{period: period, jitter: jitter, phase: time.Duration(r.Int64N(int64(period))), k: -1, rnd: r}
}

// Next returns the offset from the start of the next occurrence.
func (s *Series) Next() time.Duration {
	for {
		t := s.phase + time.Duration(s.k)*s.period
		s.k++
		if s.jitter > 0 {
			t += time.Duration((s.rnd.Float64() - 0.5) * s.jitter * float64(s.period))
		}
		if t >= 0 {
			return t
		}
	}
}

// Event is an occurrence due at simulated offset At.
type Event struct {
	At     time.Duration
	Device int
	Plan   int
	series *Series
}

// Queue is the schedule of every device's classes, earliest first.
type Queue struct{ h eventHeap }

// Add starts a series for (device, plan).
func (q *Queue) Add(device, plan int, s *Series) {
	heap.Push(&q.h, Event{At: s.Next(), Device: device, Plan: plan, series: s})
}

// Len is the number of series.
func (q *Queue) Len() int { return q.h.Len() }

// Peek returns the earliest event.
func (q *Queue) Peek() Event { return q.h[0] }

// Pop returns the earliest event and schedules that series' next one.
func (q *Queue) Pop() Event {
	e := q.h[0]
	q.h[0].At = max(e.series.Next(), e.At)
	heap.Fix(&q.h, 0)
	return e
}

type eventHeap []Event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].At < h[j].At }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(Event)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
