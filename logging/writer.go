package logging

import (
	"io"
	"sync"
	"time"
)

// Writer batches log lines: a line waits in memory at most the flush delay (or
// until the buffer fills, or Flush), so a busy gateway writes its access lines a
// few times a second instead of once per request. New flushes after every
// warning and error, so those are never held back, and the process flushes at
// exit; what a crash can lose is at most the last flush delay of info lines.
type Writer struct {
	w     io.Writer
	delay time.Duration
	size  int

	mu    sync.Mutex
	buf   []byte
	armed bool
	err   error
}

// NewWriter buffers up to size bytes for w, for at most delay.
func NewWriter(w io.Writer, size int, delay time.Duration) *Writer {
	return &Writer{w: w, delay: delay, size: size, buf: make([]byte, 0, size)}
}

// Write buffers p (one log line); it reports the first error of an earlier
// flush, as a write to the file itself would have.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		b.flushLocked()
	}
	if len(p) > b.size {
		if _, err := b.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		time.AfterFunc(b.delay, func() { _ = b.Flush() })
	}
	return len(p), b.err
}

// Flush writes what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.armed = false
	return b.err
}

func (b *Writer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil && b.err == nil {
		b.err = err
	}
	b.buf = b.buf[:0]
}
