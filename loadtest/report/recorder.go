// Package report records what the load tester's devices do and reports it:
// throughput, latency percentiles per role and per class, errors by reason,
// egress per device per month measured on both legs beside the gateway's own
// counters, as text, JSON and a self-contained HTML page with plots.
package report

import (
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/device"
)

// Recorder collects device results (it implements device.Observer). Results
// land in time buckets of a fixed width for the timeline.
type Recorder struct {
	start  time.Time
	bucket time.Duration

	mu       sync.Mutex
	roles    map[string]*tally
	classes  map[string]*tally
	reasons  map[string]uint64
	timeline []*slot
	connRead int64 // bytes read outside exchanges and classes
	connWrit int64
}

type tally struct {
	hist       Histogram
	errors     uint64
	read, writ int64
	newConns   uint64
	resumed    uint64
}

// slot is one time bucket of the timeline.
type slot struct {
	roles  map[string]*Histogram
	errors uint64
	read   int64
}

// NewRecorder starts recording at start with timeline buckets of width bucket.
func NewRecorder(start time.Time, bucket time.Duration) *Recorder {
	return &Recorder{
		start: start, bucket: max(bucket, 100*time.Millisecond),
		roles: map[string]*tally{}, classes: map[string]*tally{}, reasons: map[string]uint64{},
	}
}

func (r *Recorder) tallyOf(m map[string]*tally, k string) *tally {
	t := m[k]
	if t == nil {
		t = &tally{}
		m[k] = t
	}
	return t
}

func (r *Recorder) slotAt(at time.Time) *slot {
	i := max(int(at.Sub(r.start)/r.bucket), 0)
	for len(r.timeline) <= i {
		r.timeline = append(r.timeline, &slot{roles: map[string]*Histogram{}})
	}
	return r.timeline[i]
}

// Exchange implements device.Observer.
func (r *Recorder) Exchange(x device.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range []*tally{r.tallyOf(r.roles, x.Role), r.tallyOf(r.classes, x.Class)} {
		t.hist.Add(x.Latency)
		t.read += x.Read
		t.writ += x.Written
		if x.Reason != "" {
			t.errors++
		}
		if x.NewConn {
			t.newConns++
			if x.Resumed {
				t.resumed++
			}
		}
	}
	s := r.slotAt(x.End)
	h := s.roles[x.Role]
	if h == nil {
		h = &Histogram{}
		s.roles[x.Role] = h
	}
	h.Add(x.Latency)
	s.read += x.Read
	if x.Reason != "" {
		r.reasons[x.Reason]++
		s.errors++
	}
}

// ConnBytes implements device.Observer.
func (r *Recorder) ConnBytes(class string, read, written int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if class == "" {
		r.connRead += read
		r.connWrit += written
		return
	}
	t := r.tallyOf(r.classes, class)
	t.read += read
	t.writ += written
}

// Reject counts an occurrence the tester itself could not start.
func (r *Recorder) Reject(reason string) {
	r.mu.Lock()
	r.reasons[reason]++
	r.mu.Unlock()
}

// Snapshot is a consistent copy of the live counters, for the progress bar.
type Snapshot struct {
	Exchanges, Errors uint64
	P99               time.Duration
}

// Snapshot returns the counters now.
func (r *Recorder) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all Histogram
	var s Snapshot
	for _, t := range r.roles {
		all.Merge(&t.hist)
		s.Errors += t.errors
	}
	s.Exchanges = all.N
	s.P99 = all.Quantile(0.99)
	return s
}
