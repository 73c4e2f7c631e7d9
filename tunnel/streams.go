package tunnel

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/hashicorp/yamux"
)

// StreamHandler is a connector handler that serves the common request streams
// itself, without net/http's server (one http.Server connection per stream is
// most of what a small request costs the connector). The client calls
// ServeStream with every request stream in a goroutine of its own; it returns
// nil once it has served and closed the stream, or, for a request it leaves to
// net/http, the stream to serve as a connection of the session's http.Server
// (which then calls ServeHTTP): a PrefixConn when it has read from it.
type StreamHandler interface {
	http.Handler
	ServeStream(st net.Conn, instance int) net.Conn
}

// PrefixConn is a stream some of whose bytes were read already: Read gives
// them first, then the rest of the stream.
type PrefixConn struct {
	net.Conn
	r io.Reader
}

// NewPrefixConn returns c with prefix put back in front of what it reads.
func NewPrefixConn(c net.Conn, prefix []byte) *PrefixConn {
	return &PrefixConn{Conn: c, r: io.MultiReader(&prefixReader{b: prefix}, c)}
}

func (p *PrefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

type prefixReader struct{ b []byte }

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.b)
	p.b = p.b[n:]
	return n, nil
}

// Unread returns a copy of what br holds and has not been read, and resets br.
func Unread(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	out := append([]byte(nil), b...)
	br.Reset(nil)
	return out
}

// streamDispatcher accepts a session's streams, hands each to the
// StreamHandler and serves those it gives back to net/http as the listener of
// the session's http.Server. Closing it closes the session.
type streamDispatcher struct {
	mux     *yamux.Session
	h       StreamHandler
	inst    int
	handoff chan net.Conn
	work    chan net.Conn // to idle workers
	idle    atomic.Int32
	done    chan struct{} // closed when the session accepts no more streams
	err     error
}

func newStreamDispatcher(mux *yamux.Session, h StreamHandler, inst int) *streamDispatcher {
	d := &streamDispatcher{mux: mux, h: h, inst: inst, handoff: make(chan net.Conn), work: make(chan net.Conn), done: make(chan struct{})}
	go d.acceptLoop()
	return d
}

func (d *streamDispatcher) acceptLoop() {
	defer close(d.done)
	for {
		st, err := d.mux.Accept()
		if err != nil {
			d.err = err
			return
		}
		select {
		case d.work <- st: // an idle worker takes it
		default:
			go d.worker(st)
		}
	}
}

// streamWorkers is how many idle workers a session keeps: a stream is served
// by a goroutine whose stack has already grown, instead of a new one.
const streamWorkers = 64

// worker serves st, then waits for more streams while fewer than
// streamWorkers others wait.
func (d *streamDispatcher) worker(st net.Conn) {
	for {
		d.serve(st)
		if d.idle.Add(1) > streamWorkers {
			d.idle.Add(-1)
			return
		}
		select {
		case st = <-d.work:
			d.idle.Add(-1)
		case <-d.done:
			d.idle.Add(-1)
			return
		}
	}
}

func (d *streamDispatcher) serve(st net.Conn) {
	c := d.h.ServeStream(st, d.inst)
	if c == nil {
		return
	}
	select {
	case d.handoff <- c:
	case <-d.done:
		c.Close()
	}
}

// Accept returns the next stream the handler left to net/http.
func (d *streamDispatcher) Accept() (net.Conn, error) {
	select {
	case c := <-d.handoff:
		return c, nil
	case <-d.done:
		return nil, d.err
	}
}

func (d *streamDispatcher) Close() error   { return d.mux.Close() }
func (d *streamDispatcher) Addr() net.Addr { return d.mux.Addr() }
