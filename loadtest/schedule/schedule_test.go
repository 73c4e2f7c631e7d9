package schedule

import (
	"math"
	"testing"
	"time"
)

// TestSeriesCount checks that a series lands, over a span, the number of
// occurrences its period says: on average over phases exactly span/period,
// each series within one of it.
func TestSeriesCount(t *testing.T) {
	const span = 30 * 24 * time.Hour
	tests := []struct {
		name   string
		period time.Duration
		jitter float64
	}{
		{"hourly poll, 20 % jitter", time.Hour, 0.2},
		{"15-minute renewal", 15 * time.Minute, 0.1},
		{"weekly inventory, any time in the week", 7 * 24 * time.Hour, 1},
		{"quarterly, longer than the span", 90 * 24 * time.Hour, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := float64(span) / float64(tt.period)
			total := 0
			const series = 400
			for s := range series {
				sr := NewSeries(tt.period, tt.jitter, uint64(s)+1)
				n := 0
				last := time.Duration(-1)
				for at := sr.Next(); at < span; at = sr.Next() {
					if at < last-time.Duration(tt.jitter*float64(tt.period)) {
						t.Fatalf("occurrences went back in time: %v after %v", at, last)
					}
					last = at
					n++
				}
				if math.Abs(float64(n)-want) > 1.5+tt.jitter {
					t.Errorf("series %d: got %d occurrences, want %.2f +- %.1f", s, n, want, 1.5+tt.jitter)
				}
				total += n
			}
			if got := float64(total) / series; math.Abs(got-want) > math.Max(0.05*want, 0.05) {
				t.Errorf("mean over %d series: got %.3f, want %.3f", series, got, want)
			}
		})
	}
}

// TestSteadyStart checks that the first minutes see the steady rate: of
// 10,000 devices whose class runs monthly and may land anywhere in its period,
// about 10,000 x 1 min / 30 days occur in the first minute, not a burst.
func TestSteadyStart(t *testing.T) {
	n := 0
	for d := range 10000 {
		if NewSeries(30*24*time.Hour, 1, uint64(d)+1).Next() < time.Minute {
			n++
		}
	}
	if n > 5 {
		t.Errorf("got %d occurrences in the first minute, want about 0.23", n)
	}
}

func TestQueueOrder(t *testing.T) {
	q := &Queue{}
	for d := range 50 {
		for p, period := range []time.Duration{time.Hour, 15 * time.Minute, 24 * time.Hour} {
			q.Add(d, p, NewSeries(period, 0.3, uint64(d*10+p)+1))
		}
	}
	last := time.Duration(-1)
	for range 5000 {
		e := q.Pop()
		if e.At < last {
			t.Fatalf("popped %v after %v", e.At, last)
		}
		last = e.At
	}
	if q.Len() != 150 {
		t.Errorf("got %d series, want 150", q.Len())
	}
}

func TestClock(t *testing.T) {
	w0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(w0, w0, 8640)
	if got := c.SimAt(w0.Add(5 * time.Minute)).Sub(w0); got != 30*24*time.Hour {
		t.Errorf("5 min wall at 8640x: got %v simulated, want 720h", got)
	}
	if got := c.WallAt(w0.Add(30 * 24 * time.Hour)).Sub(w0); got != 5*time.Minute {
		t.Errorf("a month at 8640x: got %v wall, want 5m", got)
	}
	if got := c.Wall(8640 * time.Second); got != time.Second {
		t.Errorf("Wall: got %v", got)
	}
}
