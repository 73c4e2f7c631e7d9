package tunnel

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

func TestBackoffDelay(t *testing.T) {
	b := DefaultBackoff()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	recent := now.Add(-10 * time.Second)
	old := now.Add(-5 * time.Minute)
	tests := []struct {
		name   string
		n      int
		lastUp time.Time
		want   time.Duration
	}{
		{"first retry", 0, recent, 100 * time.Millisecond},
		{"doubles", 2, recent, 400 * time.Millisecond},
		{"recent cap", 10, recent, time.Second},
		{"never up starts small", 0, time.Time{}, 100 * time.Millisecond},
		{"never up cap", 20, time.Time{}, 30 * time.Second},
		{"long down cap", 20, old, 30 * time.Second},
		{"long down middle", 5, old, 3200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Delay(tt.n, tt.lastUp, now, nil); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	b := DefaultBackoff()
	now := time.Now()
	for _, r := range []float64{0, 0.5, 0.999} {
		got := b.Delay(10, now, now, func() float64 { return r })
		if got < 800*time.Millisecond || got > 1200*time.Millisecond {
			t.Errorf("jitter %v gave %v, want within ±20%% of 1s", r, got)
		}
	}
}
