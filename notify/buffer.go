package notify

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// BufferConfig bounds a connector's buffer of recent events.
type BufferConfig struct {
	// TTL is how long an event is kept for devices to resume; zero keeps none.
	TTL time.Duration
	// PerDevice is the most events kept per device (oldest dropped first).
	PerDevice int
	// Broadcasts is the most events to all devices kept.
	Broadcasts int
	// MaxBytes bounds the buffer's memory (an estimate: data, names and
	// bookkeeping); the oldest events go first.
	MaxBytes int64
}

// Validate reports what is wrong with the bounds.
func (c BufferConfig) Validate() error {
	var errs []error
	if c.TTL < 0 {
		errs = append(errs, errors.New("the TTL must not be negative"))
	}
	if c.PerDevice < 1 || c.PerDevice > MaxReplayEvents/2 {
		errs = append(errs, fmt.Errorf("per-device events must be 1 to %d", MaxReplayEvents/2))
	}
	if c.Broadcasts < 1 || c.Broadcasts > MaxReplayEvents/2 {
		errs = append(errs, fmt.Errorf("broadcast events must be 1 to %d", MaxReplayEvents/2))
	}
	if c.MaxBytes < 64<<10 {
		errs = append(errs, errors.New("the buffer needs at least 64KiB"))
	}
	return errors.Join(errs...)
}

// Buffer keeps recent events per device and to all devices, bounded in count,
// age and bytes, for devices that resume with Last-Event-ID. It is safe for
// concurrent use.
type Buffer struct {
	cfg   BufferConfig
	mu    sync.Mutex
	fifo  ring[*entry] // every event, oldest first
	all   ring[*entry] // events to all devices
	devs  map[string]*ring[*entry]
	bytes int64
}

type entry struct {
	ev      Event
	expires time.Time
	devices []string // nil for an event to all devices
	size    int64
}

// Bookkeeping estimates per event and per targeted device (pointers, slice
// slots, map entries).
const (
	entryOverhead  = 160
	deviceOverhead = 96
)

// NewBuffer returns an empty buffer.
func NewBuffer(cfg BufferConfig) (*Buffer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notify buffer: %w", err)
	}
	return &Buffer{cfg: cfg, devs: map[string]*ring[*entry]{}}, nil
}

// Add keeps ev for devices (or for all devices when all is set). It returns when
// the event expires, and false when it is not kept (no TTL, or larger than the
// whole buffer). The buffer keeps ev.Data and devices; the caller must not
// change them.
func (b *Buffer) Add(now time.Time, ev Event, all bool, devices []string) (time.Time, bool) {
	if b.cfg.TTL <= 0 {
		return time.Time{}, false
	}
	size := int64(entryOverhead + len(ev.Data) + len(ev.Event))
	for _, d := range devices {
		size += int64(len(d) + deviceOverhead)
	}
	if size > b.cfg.MaxBytes {
		return time.Time{}, false
	}
	e := &entry{ev: ev, expires: now.Add(b.cfg.TTL), size: size}
	if !all {
		e.devices = devices
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	b.fifo.push(e)
	b.bytes += size
	if all {
		if b.all.len() >= b.cfg.Broadcasts {
			b.all.pop()
		}
		b.all.push(e)
	} else {
		for _, d := range devices {
			q := b.devs[d]
			if q == nil {
				q = &ring[*entry]{}
				b.devs[d] = q
			}
			if q.len() >= b.cfg.PerDevice {
				q.pop()
			}
			q.push(e)
		}
	}
	for b.bytes > b.cfg.MaxBytes {
		b.evictLocked()
	}
	return e.expires, true
}

// Replay answers a replay request: the unexpired events to all devices after
// the request's smallest After, and each device's own events after its After.
func (b *Buffer) Replay(now time.Time, req *ReplayRequest) *ReplayResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	resp := &ReplayResponse{Broadcasts: []Event{}, Devices: make([][]Event, len(req.Devices))}
	for i := firstAfter(&b.all, req.MinAfter()); i < b.all.len(); i++ {
		resp.Broadcasts = append(resp.Broadcasts, b.all.at(i).ev)
	}
	for k, d := range req.Devices {
		own := []Event{}
		if q := b.devs[d.Device]; q != nil {
			for i := firstAfter(q, d.After); i < q.len(); i++ {
				own = append(own, q.at(i).ev)
			}
		}
		resp.Devices[k] = own
	}
	return resp
}

// Since returns what device missed after after: its own events and those to
// all devices, in sequence order.
func (b *Buffer) Since(now time.Time, device string, after uint64) []Event {
	req := &ReplayRequest{Devices: []DeviceAfter{{Device: device, After: after}}}
	return b.Replay(now, req).For(req, 0)
}

// Stats are the buffer's current size.
type Stats struct {
	Events  int   `json:"events"`
	Devices int   `json:"devices"`
	Bytes   int64 `json:"bytes"`
}

// Stats reports the buffer's size.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Events: b.fifo.len(), Devices: len(b.devs), Bytes: b.bytes}
}

func firstAfter(q *ring[*entry], after uint64) int {
	i := 0
	for i < q.len() && q.at(i).ev.Seq <= after {
		i++
	}
	return i
}

func (b *Buffer) expireLocked(now time.Time) {
	for b.fifo.len() > 0 && !now.Before(b.fifo.front().expires) {
		b.evictLocked()
	}
}

// evictLocked drops the oldest event. An event still held in a device's queue
// (or the broadcast queue) is at its front: every older one went before it.
func (b *Buffer) evictLocked() {
	e := b.fifo.front()
	b.fifo.pop()
	b.bytes -= e.size
	if e.devices == nil {
		if b.all.len() > 0 && b.all.front() == e {
			b.all.pop()
		}
		return
	}
	for _, d := range e.devices {
		q := b.devs[d]
		if q == nil || q.len() == 0 || q.front() != e {
			continue
		}
		q.pop()
		if q.len() == 0 {
			delete(b.devs, d)
		}
	}
}

// ring is a FIFO queue on a slice.
type ring[T comparable] struct {
	items []T
	head  int
}

func (r *ring[T]) len() int   { return len(r.items) - r.head }
func (r *ring[T]) front() T   { return r.items[r.head] }
func (r *ring[T]) at(i int) T { return r.items[r.head+i] }
func (r *ring[T]) push(v T)   { r.items = append(r.items, v) }

func (r *ring[T]) pop() {
	var zero T
	r.items[r.head] = zero
	r.head++
	switch {
	case r.head == len(r.items):
		r.items, r.head = r.items[:0], 0
	case r.head >= 16 && 2*r.head >= len(r.items):
		n := copy(r.items, r.items[r.head:])
		clear(r.items[n:])
		r.items, r.head = r.items[:n], 0
	}
}
