package cost

import (
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// t0 is midnight UTC, the start of a bucket of every window.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is a fixed hashing key, so estimates are the same at every run.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// near reports whether got is within a relative 1e-9 of want (absolute near 0).
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func checkNear(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// testConfig is DefaultConfig hashing under testKey, from a key file.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.KeyFile = filepath.Join(t.TempDir(), "device-hash.key")
	if err := os.WriteFile(cfg.KeyFile, testKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}
