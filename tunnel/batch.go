package tunnel

import (
	"net"
	"sync"
	"time"
)

// batchConn coalesces the writes yamux makes into few writes of the tunnel's
// TLS connection. yamux writes every frame as two writes (its 12-byte header,
// then its body) and every window update, SYN and FIN as one, and on a TLS
// connection each write is a record of its own and a system call. A small write
// is queued and returns at once; a flusher goroutine writes what has queued up
// in one write, so the frames of a request (its stream's SYN, header frame,
// body frames, FIN) and of concurrent streams leave together. With one P the
// flusher runs when yamux's send loop has nothing left to send, which is the
// moment to flush; with more it runs beside the send loop and encrypts while
// yamux prepares the next frames.
//
// A large write with nothing in flight goes straight to the connection (the
// queued bytes with its head first, filling one record), so bulk transfers are
// not copied once more. Queued bytes are bounded by batchMax: beyond it a write
// waits for the flusher, so a stalled peer stalls yamux's send loop as it did
// before (and its write timeouts and keepalives notice). The first write error
// is returned by every later write. Close writes what is queued first.
type batchConn struct {
	net.Conn

	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte // queued bytes
	spare    []byte // the other buffer, while nobody writes it
	flushing bool   // a goroutine is writing to Conn
	err      error

	wake      chan struct{}
	quit      chan struct{}
	closeOnce sync.Once
}

const (
	// batchMax bounds the bytes queued for the flusher.
	batchMax = 128 << 10
	// batchDirect is the size from which a write goes straight to the
	// connection when nothing is being written.
	batchDirect = 8 << 10
	// tlsRecord is the largest TLS record payload: queued bytes are sent with
	// the head of a direct write up to it.
	tlsRecord = 16 << 10
)

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	b.cond.L = &b.mu
	go b.flushLoop()
	return b
}

func (b *batchConn) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Write queues p, or writes it at once when it is large and nothing else is
// being written. It never keeps p.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && len(b.buf)+len(p) > batchMax && (b.flushing || len(b.buf) > 0) {
		if !b.flushing {
			b.kick()
		}
		b.cond.Wait()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	if len(p) < batchDirect || b.flushing {
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
		b.kick()
		return len(p), nil
	}
	// Write it here: first the queued bytes with as much of p as fills their
	// record, then the rest of p.
	b.flushing = true
	head := b.buf
	b.buf, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	var err error
	rest := p
	if len(head) > 0 {
		k := min(len(p), max(tlsRecord-len(head), 0))
		head = append(head, p[:k]...)
		rest = p[k:]
		_, err = b.Conn.Write(head)
	}
	if err == nil && len(rest) > 0 {
		_, err = b.Conn.Write(rest)
	}
	b.done(head, err)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// done ends a write to Conn: it keeps out for reuse, records err and lets the
// flusher and waiting writers go on.
func (b *batchConn) done(out []byte, err error) {
	b.mu.Lock()
	b.flushing = false
	if cap(out) <= 2*batchMax {
		b.spare = out[:0]
	}
	if err != nil && b.err == nil {
		b.err = err
	}
	more := len(b.buf) > 0
	b.cond.Broadcast()
	b.mu.Unlock()
	if more {
		b.kick()
	}
}

func (b *batchConn) flushLoop() {
	for {
		select {
		case <-b.wake:
		case <-b.quit:
			return
		}
		b.mu.Lock()
		if b.flushing || len(b.buf) == 0 || b.err != nil {
			// A direct write is in progress: it kicks again when done.
			b.mu.Unlock()
			continue
		}
		out := b.buf
		b.buf, b.spare = b.spare[:0], nil
		b.flushing = true
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.done(out, err)
	}
}

// closeFlushTimeout bounds how long Close spends writing the queued bytes: a
// healthy peer's socket takes them at once, a stalled one must not hold Close.
const closeFlushTimeout = 2 * time.Second

// Close writes what is queued, stops the flusher and closes the connection.
// The queued bytes are ones yamux counts as sent (its send loop's write
// returned): a stream's last data and its FIN, when a draining peer closes its
// session once its streams are done. Dropping them would cut those responses
// short. A write in progress is waited for; both are bounded by
// closeFlushTimeout through the connection's write deadline.
func (b *batchConn) Close() error {
	b.closeOnce.Do(func() {
		_ = b.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		b.mu.Lock()
		for b.flushing && b.err == nil {
			b.cond.Wait()
		}
		if b.err == nil && len(b.buf) > 0 {
			out := b.buf
			b.buf = nil
			b.flushing = true // the flusher and direct writes keep off
			b.mu.Unlock()
			_, err := b.Conn.Write(out)
			b.mu.Lock()
			b.flushing = false
			if err != nil && b.err == nil {
				b.err = err
			}
		}
		close(b.quit)
		if b.err == nil {
			b.err = net.ErrClosed
		}
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	return b.Conn.Close()
}
