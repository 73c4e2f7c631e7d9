// Package logging builds the slog loggers of cmg's processes: JSON lines at a
// configured level, with warnings and errors rate-limited per message, so that a
// failure on the request path (a role down, a connector gone) logs a few lines
// and a count of what was left out instead of one line per request. Records below
// warning (the access log among them) are never limited: each request keeps its
// one access line, but they are written in batches (Writer), not one write per
// request.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Limit is how many warnings or errors with one message may pass: Burst at once,
// then one per Every. What is held back is counted, and the next record of that
// message that passes carries the count as the attribute "suppressed".
type Limit struct {
	Burst int
	Every time.Duration
}

// DefaultLimit lets 10 lines of a message through at once, then one a second.
var DefaultLimit = Limit{Burst: 10, Every: time.Second}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: %w", s, err)
	}
	return l, nil
}

// Batching of New's output: lines wait at most FlushDelay, in a buffer of
// BufferSize bytes.
const (
	FlushDelay = 100 * time.Millisecond
	BufferSize = 64 << 10
)

// New returns a JSON logger writing to w at the level (an unknown level means
// info), with warnings and errors rate-limited by DefaultLimit, and lines below
// warning batched (see Writer). Call flush before the process exits.
func New(w io.Writer, level string) (log *slog.Logger, flush func()) {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	bw := NewWriter(w, BufferSize, FlushDelay)
	h := NewRateLimited(slog.NewJSONHandler(bw, &slog.HandlerOptions{Level: l}), DefaultLimit, time.Now)
	h.flush = bw
	return slog.New(h), func() { _ = bw.Flush() }
}

// maxKeys bounds the messages tracked one by one; messages beyond it share one
// bucket, so formatted messages cannot grow the map without end.
const maxKeys = 1024

// overflowKey is the shared bucket's key.
const overflowKey = "\x00other"

// limiter is the state shared by a handler and every handler derived from it
// with WithAttrs or WithGroup.
type limiter struct {
	limit Limit
	now   func() time.Time
	mu    sync.Mutex
	keys  map[string]*bucket
}

type bucket struct {
	tokens     float64
	last       time.Time
	suppressed int64
}

// RateLimited is a slog.Handler that passes records below warning through and
// rate-limits the others per message.
type RateLimited struct {
	next slog.Handler
	lim  *limiter
	// flush, when set, is flushed after each warning or error.
	flush *Writer
}

// NewRateLimited wraps next. now is the clock (time.Now in production).
func NewRateLimited(next slog.Handler, limit Limit, now func() time.Time) *RateLimited {
	if limit.Burst < 1 {
		limit.Burst = 1
	}
	return &RateLimited{next: next, lim: &limiter{limit: limit, now: now, keys: map[string]*bucket{}}}
}

// Enabled implements slog.Handler.
func (h *RateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *RateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	ok, suppressed := h.lim.allow(r.Message)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", suppressed))
	}
	err := h.next.Handle(ctx, r)
	if h.flush != nil {
		if ferr := h.flush.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h *RateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &RateLimited{next: h.next.WithAttrs(as), lim: h.lim, flush: h.flush}
}

// WithGroup implements slog.Handler.
func (h *RateLimited) WithGroup(name string) slog.Handler {
	return &RateLimited{next: h.next.WithGroup(name), lim: h.lim, flush: h.flush}
}

// allow takes a token for the message; it returns whether the record passes and,
// when it does, how many records of the message were held back before it.
func (l *limiter) allow(msg string) (bool, int64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[msg]
	if b == nil {
		if len(l.keys) >= maxKeys {
			msg = overflowKey
			b = l.keys[msg]
		}
		if b == nil {
			b = &bucket{tokens: float64(l.limit.Burst), last: now}
			l.keys[msg] = b
		}
	}
	if l.limit.Every > 0 {
		b.tokens += float64(now.Sub(b.last)) / float64(l.limit.Every)
		b.tokens = min(b.tokens, float64(l.limit.Burst))
	}
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	s := b.suppressed
	b.suppressed = 0
	return true, s
}
