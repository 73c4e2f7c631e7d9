package tunnel

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// tcpPair is a connected pair of loopback TCP connections.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestBatchConnKeepsOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes int
		max    int
	}{
		{"small frames", 5000, 64},
		{"mixed", 800, 40 << 10},
		{"large", 50, 300 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tcpPair(t)
			bc := newBatchConn(a)
			defer bc.Close()
			rng := rand.New(rand.NewPCG(1, uint64(tc.max)))
			var want bytes.Buffer
			got := make(chan []byte, 1)
			go func() {
				data, _ := io.ReadAll(b)
				got <- data
			}()
			buf := make([]byte, tc.max)
			for i := range tc.writes {
				p := buf[:1+rng.IntN(tc.max)]
				for j := range p {
					p[j] = byte(i + j)
				}
				want.Write(p)
				if n, err := bc.Write(p); n != len(p) || err != nil {
					t.Fatalf("write %d: got %d, %v; want %d, nil", i, n, err, len(p))
				}
				for j := range p {
					p[j] = 0xee // the caller may reuse its buffer at once
				}
			}
			// Close writes what is still queued, then closes the writing side.
			bc.Close()
			data := <-got
			if !bytes.Equal(data, want.Bytes()) {
				t.Fatalf("got %d bytes, want %d (same bytes in order)", len(data), want.Len())
			}
		})
	}
}

func TestBatchConnReportsWriteErrors(t *testing.T) {
	a, b := tcpPair(t)
	bc := newBatchConn(a)
	defer bc.Close()
	b.Close()
	p := make([]byte, 1000)
	var err error
	for i := 0; i < 100000 && err == nil; i++ {
		_, err = bc.Write(p)
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
	if _, err2 := bc.Write(p); err2 == nil {
		t.Errorf("a write after an error succeeded")
	}
}

func TestBatchConnCloseReleasesABlockedWriter(t *testing.T) {
	a, _ := tcpPair(t) // the peer never reads: the socket buffers fill up
	bc := newBatchConn(a)
	errc := make(chan error, 1)
	go func() {
		p := make([]byte, 4096)
		for {
			if _, err := bc.Write(p); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Give the writer time to fill the socket and the queue and block: no
	// state of batchConn tells a writer waiting for the flusher from one
	// about to queue, and Close must release it either way.
	time.Sleep(100 * time.Millisecond)
	bc.Close()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release the blocked writer")
	}
}

// TestBatchConnCloseSendsQueuedBytes: what yamux handed over before Close (a
// draining connector's last response bytes and FINs) reaches the peer, even
// when a write was in progress as Close began.
func TestBatchConnCloseSendsQueuedBytes(t *testing.T) {
	a, b := tcpPair(t)
	bc := newBatchConn(a)
	// A write in progress: later writes queue and the flusher keeps off.
	bc.mu.Lock()
	bc.flushing = true
	bc.mu.Unlock()
	var want []byte
	for i := 0; i < 100; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 100)
		if _, err := bc.Write(p); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		want = append(want, p...)
	}
	closed := make(chan error, 1)
	go func() { closed <- bc.Close() }()
	bc.done(nil, nil) // the write in progress ends
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the peer got %d bytes, want the %d queued before Close", len(got), len(want))
	}
	if _, err := bc.Write([]byte("late")); err == nil {
		t.Errorf("a write after Close succeeded")
	}
}
