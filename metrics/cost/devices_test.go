package cost

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

func TestDevicesWindows(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration // since the one observation, at the start of a bucket of every window
		want  [3]uint64     // 1h, 24h, 30d
	}{
		{"at once", 0, [3]uint64{1, 1, 1}},
		{"an hour later", time.Hour, [3]uint64{1, 1, 1}},
		{"still in the 1h window's last bucket", 64*time.Minute + 59*time.Second, [3]uint64{1, 1, 1}},
		{"out of the 1h window", 65 * time.Minute, [3]uint64{0, 1, 1}},
		{"still in the 24h window", 24*time.Hour + 59*time.Minute, [3]uint64{0, 1, 1}},
		{"out of the 24h window", 25 * time.Hour, [3]uint64{0, 0, 1}},
		{"still in the 30d window", 30*24*time.Hour + 23*time.Hour, [3]uint64{0, 0, 1}},
		{"out of the 30d window", 31 * 24 * time.Hour, [3]uint64{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			d := NewDevices(testKey, c.Now)
			d.Observe("device-1")
			c.Advance(tt.after)
			got := d.Active()
			if [3]uint64(got) != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDevicesDistinctAcrossBuckets(t *testing.T) {
	c := newFakeClock()
	d := NewDevices(testKey, c.Now)
	// Ten devices, each seen every hour for a day: still ten devices.
	for range 24 {
		for i := range 10 {
			d.Observe(fmt.Sprintf("device-%d", i))
			d.Observe(fmt.Sprintf("device-%d", i))
		}
		c.Advance(time.Hour)
	}
	d.Observe("device-new")
	got := d.Active()
	if got[0] != 11 || got[1] != 11 || got[2] != 11 {
		t.Errorf("got %v, want 11 in every window", got)
	}
	if n := d.ActiveIn("24h"); n != 11 {
		t.Errorf("ActiveIn(24h): got %d, want 11", n)
	}
	if n := d.ActiveIn("week"); n != 0 {
		t.Errorf("ActiveIn(week): got %d, want 0", n)
	}
}

func TestDevicesAccuracy(t *testing.T) {
	for _, n := range []int{1000, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := newFakeClock()
			d := NewDevices(testKey, c.Now)
			for i := range n {
				d.Observe(fmt.Sprintf("cn=device-%07d.corp.example", i))
				if i%(n/10) == 0 {
					c.Advance(time.Minute) // spread over buckets of the 1h window
				}
			}
			bound := 3 * RelativeStandardError
			for i, got := range d.Active() {
				if rel := math.Abs(float64(got)-float64(n)) / float64(n); rel > bound {
					t.Errorf("window %s: got %d, want %d within %.1f %%", Windows[i].Name, got, n, 100*bound)
				}
			}
		})
	}
}

func TestDevicesKeyed(t *testing.T) {
	c := newFakeClock()
	a := NewDevices(testKey, c.Now)
	b := NewDevices([]byte("another key, another install...."), c.Now)
	if a.hash("device-1") == b.hash("device-1") {
		t.Errorf("the same identity hashes the same under two keys; want a keyed hash")
	}
	if h1, h2 := a.hash("device-1"), a.hash("device-1"); h1 != h2 {
		t.Errorf("an identity hashes differently twice under one key")
	}
}

func TestDevicesConcurrent(t *testing.T) {
	c := newFakeClock()
	d := NewDevices(testKey, c.Now)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				d.Observe(fmt.Sprintf("g%d-device-%d", g, i))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			d.Active()
			if _, err := d.EncodeState(); err != nil {
				t.Errorf("EncodeState: %v", err)
			}
		}
	})
	wg.Wait()
	if got := d.ActiveIn("1h"); got != 2000 {
		t.Errorf("got %d, want 2000", got)
	}
}

func BenchmarkDevicesObserve(b *testing.B) {
	d := NewDevices(testKey, time.Now)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("device-%d", i)
	}
	b.ResetTimer()
	for i := range b.N {
		d.Observe(ids[i%len(ids)])
	}
}
