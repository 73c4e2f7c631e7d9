package policies

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

func rateLimited(t *testing.T, err error) *httperror.Error {
	t.Helper()
	var he *httperror.Error
	if !errors.As(err, &he) || he.Reason != httperror.RateLimited {
		t.Fatalf("got %v, want a RateLimited *httperror.Error", err)
	}
	return he
}

func TestLimiterRate(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(1000, time.Minute, clk.Now)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 2, Burst: 3}}
	for i := range 3 {
		p, err := l.Acquire(d, "dev")
		if err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
		p.Release()
	}
	_, err := l.Acquire(d, "dev")
	if he := rateLimited(t, err); he.RetryAfter != 500*time.Millisecond {
		t.Errorf("RetryAfter: got %v, want 500ms", he.RetryAfter)
	}
	if _, err := l.Acquire(d, "other"); err != nil {
		t.Errorf("another device: got %v, want its own bucket", err)
	}
	if _, err := l.Acquire(&Decision{Rule: "r2", Action: Allow, Limits: d.Limits}, "dev"); err != nil {
		t.Errorf("another rule: got %v, want its own bucket", err)
	}
	clk.Advance(499 * time.Millisecond)
	_, err = l.Acquire(d, "dev")
	if he := rateLimited(t, err); he.RetryAfter != time.Millisecond {
		t.Errorf("RetryAfter: got %v, want 1ms", he.RetryAfter)
	}
	clk.Advance(time.Millisecond)
	if _, err := l.Acquire(d, "dev"); err != nil {
		t.Errorf("after the refill: %v", err)
	}
}

func TestLimiterConcurrency(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(1000, time.Minute, clk.Now)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{Concurrency: 2}}
	p1, err1 := l.Acquire(d, "dev")
	p2, err2 := l.Acquire(d, "dev")
	if err1 != nil || err2 != nil {
		t.Fatalf("two in flight: %v, %v", err1, err2)
	}
	_, err := l.Acquire(d, "dev")
	if he := rateLimited(t, err); he.RetryAfter != time.Second {
		t.Errorf("RetryAfter: got %v, want 1s", he.RetryAfter)
	}
	p1.Release()
	p3, err := l.Acquire(d, "dev")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	p2.Release()
	p3.Release()
	Permit{}.Release() // the zero Permit holds nothing
}

func TestLimiterConcurrencyRefusalKeepsTokens(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(1000, time.Minute, clk.Now)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 1, Burst: 2, Concurrency: 1}}
	p, err := l.Acquire(d, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(d, "dev"); err == nil {
		t.Fatal("second in flight admitted")
	}
	p.Release()
	if _, err := l.Acquire(d, "dev"); err != nil {
		t.Errorf("the refused request took a token: %v", err)
	}
}

func TestLimiterNoLimitsTracksNothing(t *testing.T) {
	l := NewLimiter(1000, time.Minute, nil)
	p, err := l.Acquire(&Decision{Rule: "r", Action: Allow, Limits: Limits{BodyBytes: 10}}, "dev")
	if err != nil || p != (Permit{}) {
		t.Errorf("got %v, %v; want the zero Permit", p, err)
	}
	if n := l.Len(); n != 0 {
		t.Errorf("tracking %d entries, want 0", n)
	}
}

// TestLimiterKeepsStateAcrossChanges: an unchanged rule keeps its bucket; a
// changed rate applies at once, keeping the tokens.
func TestLimiterKeepsStateAcrossChanges(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(1000, time.Minute, clk.Now)
	d := Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 1, Burst: 1}}
	if _, err := l.Acquire(&d, "dev"); err != nil {
		t.Fatal(err)
	}
	same := d // as a reload of the same file produces it
	if _, err := l.Acquire(&same, "dev"); err == nil {
		t.Fatal("an identical decision got a fresh bucket")
	}
	faster := Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 10, Burst: 1}}
	_, err := l.Acquire(&faster, "dev")
	if he := rateLimited(t, err); he.RetryAfter != 100*time.Millisecond {
		t.Errorf("RetryAfter at the new rate: got %v, want 100ms", he.RetryAfter)
	}
	clk.Advance(100 * time.Millisecond)
	if _, err := l.Acquire(&faster, "dev"); err != nil {
		t.Errorf("after refilling at the new rate: %v", err)
	}
	bigger := Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 10, Burst: 5}}
	if _, err := l.Acquire(&bigger, "dev"); err == nil {
		t.Fatal("a bigger burst refilled the bucket at once")
	}
	clk.Advance(500 * time.Millisecond)
	for i := range 5 {
		if _, err := l.Acquire(&bigger, "dev"); err != nil {
			t.Fatalf("request %d of the new burst: %v", i, err)
		}
	}
	if _, err := l.Acquire(&bigger, "dev"); err == nil {
		t.Error("a sixth request passed a burst of 5")
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(64, time.Hour, clk.Now)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 1, Burst: 1}}
	for i := range 10000 {
		p, err := l.Acquire(d, fmt.Sprintf("dev-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			p.Release()
		}
	}
	if n := l.Len(); n > 64 {
		t.Errorf("tracking %d entries, want at most 64", n)
	}
}

// sameShardDevices returns n device names that land in one shard of l.
func sameShardDevices(l *Limiter, n int) []string {
	var out []string
	want := -1
	for i := 0; len(out) < n; i++ {
		d := fmt.Sprintf("dev-%d", i)
		s := int(maphash.String(l.seed, d) % limiterShards)
		if want < 0 {
			want = s
		}
		if s == want {
			out = append(out, d)
		}
	}
	return out
}

func TestLimiterEvictsIdleBeforeInFlight(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(2*limiterShards, time.Hour, clk.Now) // two entries per shard
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{Concurrency: 1}}
	devs := sameShardDevices(l, 3)
	busy, err := l.Acquire(d, devs[0]) // oldest, still in flight
	if err != nil {
		t.Fatal(err)
	}
	p, _ := l.Acquire(d, devs[1])
	p.Release()
	if _, err := l.Acquire(d, devs[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(d, devs[0]); err == nil {
		t.Error("the in-flight device was evicted: its concurrency limit was forgotten")
	}
	busy.Release()
	// With every entry in flight, the least recently used goes, and releasing its
	// permit later is harmless.
	l2 := NewLimiter(limiterShards, time.Hour, clk.Now) // one entry per shard
	devs = sameShardDevices(l2, 2)
	p1, _ := l2.Acquire(d, devs[0])
	if _, err := l2.Acquire(d, devs[1]); err != nil {
		t.Fatal(err)
	}
	p1.Release()
	if n := l2.Len(); n != 1 {
		t.Errorf("tracking %d entries, want 1", n)
	}
}

func TestLimiterIdleEviction(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(1000, time.Minute, clk.Now)
	slow := &Decision{Rule: "slow", Action: Allow, Limits: Limits{RequestsPerSecond: 0.005, Burst: 1}} // 200 s to refill
	conc := &Decision{Rule: "conc", Action: Allow, Limits: Limits{Concurrency: 1}}
	pa, err := l.Acquire(slow, "a")
	if err != nil {
		t.Fatal(err)
	}
	pa.Release()
	held, _ := l.Acquire(conc, "b")
	done, _ := l.Acquire(conc, "c")
	done.Release()
	clk.Advance(time.Minute) // t = 60 s
	if n := l.Sweep(); n != 1 {
		t.Errorf("t=60s: swept %d, want 1 (c: released and idle)", n)
	}
	clk.Advance(40 * time.Second) // t = 100 s
	held.Release()
	if n := l.Sweep(); n != 0 {
		t.Errorf("t=100s: swept %d, want 0 (a refilling, b just released)", n)
	}
	if _, err := l.Acquire(slow, "a"); err == nil {
		t.Error("t=100s: the refilling bucket was forgotten")
	}
	clk.Advance(60 * time.Second) // t = 160 s
	if n := l.Sweep(); n != 1 {
		t.Errorf("t=160s: swept %d, want 1 (b); a's bucket still refills", n)
	}
	clk.Advance(50 * time.Second) // t = 210 s: the bucket is full again
	if n := l.Sweep(); n != 1 || l.Len() != 0 {
		t.Errorf("t=210s: swept %d leaving %d, want 1 leaving 0", n, l.Len())
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	l := NewLimiter(64, time.Minute, nil)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 1e6, Burst: 1000, Concurrency: 1000}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				p, err := l.Acquire(d, fmt.Sprintf("dev-%d", (g*500+i)%100))
				if err == nil {
					p.Release()
				}
			}
		})
	}
	wg.Wait()
	for i := range l.shards {
		for e := l.shards[i].head; e != nil; e = e.next {
			if e.inflight != 0 {
				t.Errorf("%v has %d in flight after every release", e.key, e.inflight)
			}
		}
	}
}

func TestLimiterAcquireDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	l := NewLimiter(1000, time.Minute, nil)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 1e9, Burst: 1e6, Concurrency: 10}}
	p, _ := l.Acquire(d, "dev")
	p.Release()
	if n := testing.AllocsPerRun(100, func() {
		p, err := l.Acquire(d, "dev")
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
	}); n != 0 {
		t.Errorf("%v allocations per Acquire and Release, want 0", n)
	}
}

func BenchmarkLimiterAcquire(b *testing.B) {
	l := NewLimiter(100000, time.Minute, nil)
	d := &Decision{Rule: "r", Action: Allow, Limits: Limits{RequestsPerSecond: 1e9, Burst: 1e6, Concurrency: 1e6}}
	devs := make([]string, 1000)
	for i := range devs {
		devs[i] = fmt.Sprintf("device-%d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p, _ := l.Acquire(d, devs[i%len(devs)])
			p.Release()
			i++
		}
	})
}
