package cost

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// Window is a span over which distinct devices are counted: the `window` label
// of cmg_gateway_clients_active.
type Window struct {
	// Name is the label value: "1h", "24h", "30d".
	Name string
	// Span is the window's length.
	Span time.Duration
	// Bucket is the width of one sketch. Buckets are aligned to multiples of
	// Bucket since the Unix epoch (UTC days for 24 h buckets).
	Bucket time.Duration
}

// Windows are the distinct-device windows. A window's count merges the current
// bucket with the Span/Bucket whole buckets before it, so it covers between Span
// and Span+Bucket of history: 60 to 65 minutes, 24 to 25 hours, 30 to 31 days.
// Memory is bounded by the bucket count (13 + 25 + 31 sketches of at most
// 16 KiB each, about 1.1 MiB), whatever the number of devices.
var Windows = []Window{
	{Name: "1h", Span: time.Hour, Bucket: 5 * time.Minute},
	{Name: "24h", Span: 24 * time.Hour, Bucket: time.Hour},
	{Name: "30d", Span: 30 * 24 * time.Hour, Bucket: 24 * time.Hour},
}

// sketchPrecision is the HyperLogLog precision: 2^14 registers, a relative
// standard error of 1.04/sqrt(2^14) = 0.81 % once a sketch is dense. Up to a few
// thousand devices a sketch stays sparse (HyperLogLog++'s sparse representation
// with 2^25 positions, a few bytes per device) and counts with an error far below
// that.
const sketchPrecision = 14

// RelativeStandardError is the estimator's relative standard error: 1.04/sqrt(m)
// with m = 2^14 registers. Estimates fall within 3 of it (2.4 %) of the truth
// 99.7 % of the time.
const RelativeStandardError = 0.0081

// Devices counts distinct devices over the Windows in bounded memory. It keeps
// one HyperLogLog sketch per time bucket, fed with a keyed hash of the device
// identity (HMAC-SHA-256 under a per-install secret key, first 64 bits): the
// identities themselves are never stored, and without the key the sketches
// cannot even be tested against a guessed identity. Safe for concurrent use.
type Devices struct {
	now     func() time.Time
	keyID   string
	hashers sync.Pool

	mu      sync.Mutex
	windows []*bucketRing
}

// NewDevices returns an empty counter hashing identities under key (at least 16
// bytes; see LoadOrCreateKey). now is the clock.
func NewDevices(key []byte, now func() time.Time) *Devices {
	key = append([]byte(nil), key...)
	d := &Devices{now: now, keyID: keyID(key)}
	d.hashers.New = func() any { return hmac.New(sha256.New, key) }
	for _, w := range Windows {
		d.windows = append(d.windows, newBucketRing(w))
	}
	return d
}

// keyID names a key without revealing it, so a state file written under another
// key is recognised and discarded (its hashes would not match).
func keyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("cmg distinct-device key id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Observe counts a request of the device with that identity.
func (d *Devices) Observe(identity string) {
	h := d.hash(identity)
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.windows {
		r.insert(h, now)
	}
}

func (d *Devices) hash(identity string) uint64 {
	m := d.hashers.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(identity))
	var sum [sha256.Size]byte
	h := binary.BigEndian.Uint64(m.Sum(sum[:0]))
	d.hashers.Put(m)
	return h
}

// Active is the estimated number of distinct devices seen in each window, in
// the order of Windows.
func (d *Devices) Active() []uint64 {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := make([]uint64, len(d.windows))
	for i, r := range d.windows {
		counts[i] = r.estimate(now)
	}
	return counts
}

// ActiveIn is the estimate for the named window ("24h"), 0 for an unknown name.
func (d *Devices) ActiveIn(name string) uint64 {
	for i, n := range d.Active() {
		if Windows[i].Name == name {
			return n
		}
	}
	return 0
}

// bucketRing is one window's sketches, indexed by bucket number modulo the ring
// size. A slot whose number is not the one wanted holds a stale bucket.
type bucketRing struct {
	w     Window
	slots []bucket
}

type bucket struct {
	n  int64 // bucket number: start / width since the epoch
	sk *hyperloglog.Sketch
}

func newBucketRing(w Window) *bucketRing {
	return &bucketRing{w: w, slots: make([]bucket, int(w.Span/w.Bucket)+1)}
}

func (r *bucketRing) number(t time.Time) int64 {
	return t.Unix() / int64(r.w.Bucket/time.Second)
}

func (r *bucketRing) slot(n int64) *bucket {
	size := int64(len(r.slots))
	return &r.slots[((n%size)+size)%size]
}

func (r *bucketRing) insert(h uint64, now time.Time) {
	n := r.number(now)
	b := r.slot(n)
	if b.sk == nil || b.n != n {
		*b = bucket{n: n, sk: newSketch()}
	}
	b.sk.InsertHash(h)
}

// live reports whether bucket n is within the window ending in bucket cur.
func (r *bucketRing) live(n, cur int64) bool {
	return n <= cur && n > cur-int64(len(r.slots))
}

func (r *bucketRing) estimate(now time.Time) uint64 {
	cur := r.number(now)
	merged := newSketch()
	for _, b := range r.slots {
		if b.sk != nil && r.live(b.n, cur) {
			// Same precision by construction (decoded sketches are checked), so
			// Merge cannot fail.
			_ = merged.Merge(b.sk)
		}
	}
	return merged.Estimate()
}

func newSketch() *hyperloglog.Sketch {
	sk, _ := hyperloglog.NewSketch(sketchPrecision, true)
	return sk
}
