package tunnel

import (
	"time"

	"github.com/hashicorp/yamux"
)

// Kept request streams. Opening a yamux stream per request costs both ends a
// stream (its channels, timers and receive buffer, grown again frame by frame),
// a goroutine hand-off for each control frame (SYN, ACK, two FINs) and a
// dispatch on the connector: most of what a small request costs the tunnel. So
// a stream whose exchange ended cleanly goes back to its session, and the next
// request takes it, as http.Transport keeps connections.
//
// The connector agrees per response: its fast path answers with
// HeaderStream: StreamKeep when it reads the next request from the same stream
// (tunnel.StreamHandler); anything else (net/http's server, an error it made,
// a long body it watches) is answered once and the gateway closes the stream.
// Only the gateway ends a kept stream while the session lives: it closes the
// ones idle for KeepIdle (the connector waits far longer), and all of them
// when the session drains, so that a drain's wait for open streams ends.

// HeaderStream is the connector's response header that lets the gateway keep
// the stream for another request; the gateway removes it.
const (
	HeaderStream = "Cmg-Stream"
	StreamKeep   = "keep"
)

const (
	// KeepIdle is how long the gateway keeps an idle request stream.
	KeepIdle = 30 * time.Second
	// keepMax bounds the idle streams of one session: what its busiest
	// moment needs (a stream per concurrent request) comes back, the rest is
	// closed.
	keepMax = 256
	// KeptStreamIdle is how long the connector waits for the next request on
	// a kept stream: well past KeepIdle, so that only the gateway ends one.
	KeptStreamIdle = 10 * time.Minute
)

type keptStream struct {
	st    *yamux.Stream
	since time.Time
}

// takeKept returns the most recently kept stream, or nil. Streams idle past
// KeepIdle are closed on the way. The caller holds openMu (read) and has
// checked that the session is not draining.
func (s *Session) takeKept() *yamux.Stream {
	now := s.clock()
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	for len(s.kept) > 0 {
		k := s.kept[len(s.kept)-1]
		s.kept[len(s.kept)-1] = keptStream{}
		s.kept = s.kept[:len(s.kept)-1]
		if now.Sub(k.since) < KeepIdle {
			return k.st
		}
		// The newest is stale, so are the older ones.
		_ = k.st.Close()
		s.closeKeptLocked()
	}
	return nil
}

// Keep gives back a stream whose exchange ended cleanly (the request sent
// whole, the response read to its end, the connector answered
// HeaderStream: StreamKeep), for the next request to take. The stream is
// closed instead when the session drains or has enough idle ones.
func (s *Session) Keep(st *yamux.Stream) {
	_ = st.SetDeadline(time.Time{})
	s.keptMu.Lock()
	if s.draining.Load() || len(s.kept) >= keepMax || s.mux.IsClosed() {
		s.keptMu.Unlock()
		_ = st.Close()
		return
	}
	s.kept = append(s.kept, keptStream{st: st, since: s.clock()})
	s.keptMu.Unlock()
}

// Kept is the number of idle request streams the session keeps.
func (s *Session) Kept() int {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	return len(s.kept)
}

// reapKept closes the streams idle past KeepIdle (oldest first in the slice).
func (s *Session) reapKept(now time.Time) {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	n := 0
	for n < len(s.kept) && now.Sub(s.kept[n].since) >= KeepIdle {
		_ = s.kept[n].st.Close()
		n++
	}
	if n > 0 {
		rest := copy(s.kept, s.kept[n:])
		clear(s.kept[rest:])
		s.kept = s.kept[:rest]
	}
}

// closeKept closes every idle stream (the session drains).
func (s *Session) closeKept() {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	s.closeKeptLocked()
}

func (s *Session) closeKeptLocked() {
	for i, k := range s.kept {
		_ = k.st.Close()
		s.kept[i] = keptStream{}
	}
	s.kept = s.kept[:0]
}

// clock is the session's clock (the server's Config.Now).
func (s *Session) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}
