package cost

import (
	"sync"
	"testing"
	"time"
)

// minutes advances the clock minute by minute, adding perMinute bytes and
// sampling each minute, as Meter.Run does.
func minutes(c *fakeClock, r *EgressRate, n int, perMinute uint64) {
	for range n {
		r.Add(perMinute)
		c.Advance(time.Minute)
		r.Sample()
	}
}

func TestEgressRateWindow(t *testing.T) {
	tests := []struct {
		name string
		run  func(c *fakeClock, r *EgressRate)
		want float64
	}{
		{"nothing yet", func(c *fakeClock, r *EgressRate) {}, 0},
		{"a young process: the rate over its 10 s", func(c *fakeClock, r *EgressRate) {
			r.Add(1000)
			c.Advance(10 * time.Second)
		}, 100},
		{"half an hour in: over the half hour", func(c *fakeClock, r *EgressRate) {
			minutes(c, r, 30, 60_000)
		}, 1000},
		{"steady for two hours", func(c *fakeClock, r *EgressRate) {
			minutes(c, r, 120, 60_000)
		}, 1000},
		{"traffic stopped half an hour ago", func(c *fakeClock, r *EgressRate) {
			minutes(c, r, 120, 60_000)
			minutes(c, r, 30, 0)
		}, 500},
		{"a burst more than an hour ago is gone", func(c *fakeClock, r *EgressRate) {
			minutes(c, r, 1, 3_600_000)
			minutes(c, r, 90, 0)
		}, 0},
		{"a burst within the hour counts over the hour", func(c *fakeClock, r *EgressRate) {
			minutes(c, r, 90, 0)
			minutes(c, r, 1, 3_600_000)
		}, 1000},
		{"reads between samples include the bytes since the last one", func(c *fakeClock, r *EgressRate) {
			minutes(c, r, 120, 60_000)
			r.Add(30_000)
			c.Advance(30 * time.Second)
		}, (3_600_000 + 30_000.0) / 3630},
		{"a gap in sampling stretches the window back to the last sample", func(c *fakeClock, r *EgressRate) {
			r.Add(10_800_000)
			c.Advance(3 * time.Hour)
		}, 1000},
		{"a clock that goes back gives 0, not a negative rate", func(c *fakeClock, r *EgressRate) {
			r.Add(1000)
			c.Advance(-time.Minute)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			r := NewEgressRate(c.Now)
			tt.run(c, r)
			checkNear(t, "bytes per second", r.BytesPerSecond(), tt.want)
		})
	}
}

func TestEgressRateBoundedSamples(t *testing.T) {
	c := newFakeClock()
	r := NewEgressRate(c.Now)
	for range 10 * 60 * 4 { // ten hours, read every 15 s
		r.Add(15)
		c.Advance(15 * time.Second)
		r.BytesPerSecond()
	}
	r.mu.Lock()
	n := len(r.samples)
	r.mu.Unlock()
	if n > 62 {
		t.Errorf("got %d samples kept, want at most 62 (one a minute over an hour)", n)
	}
	checkNear(t, "bytes per second", r.BytesPerSecond(), 1)
}

func TestEgressRateConcurrentAdd(t *testing.T) {
	c := newFakeClock()
	r := NewEgressRate(c.Now)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Add(3)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			r.Sample()
			r.BytesPerSecond()
		}
	})
	wg.Wait()
	if got := r.Total(); got != 8*1000*3 {
		t.Errorf("Total: got %d, want %d", got, 8*1000*3)
	}
}

func BenchmarkEgressRateAdd(b *testing.B) {
	r := NewEgressRate(time.Now)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Add(1500)
		}
	})
}
