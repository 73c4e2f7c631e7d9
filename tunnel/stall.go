package tunnel

import (
	"sync/atomic"
	"time"
)

// Stall containment (SECURITY.md, "Connectors"): a connector that takes streams
// and never answers them (a hung role proxy, or a hostile connector) would get
// its share of the round-robin and hold each of those devices for the gateway's
// response header timeout. After StallThreshold streams in a row without a
// response header in time, the session is chosen last for StallQuarantine:
// only when no other connector serves the route. One answered stream ends the
// quarantine; the next stall after it re-arms it at once.
const (
	StallThreshold  = 3
	StallQuarantine = 30 * time.Second
)

// stallState is a session's stall record.
type stallState struct {
	consecutive atomic.Int32
	until       atomic.Int64 // unix nanoseconds; 0 when not quarantined
}

// stalled reports whether the session is quarantined now.
func (s *Session) stalled() bool {
	u := s.stall.until.Load()
	return u != 0 && time.Now().UnixNano() < u
}

// Stalled reports whether the session is chosen last for stalling its streams.
func (s *Session) Stalled() bool { return s.stalled() }

// StreamStalled records a stream of sess that got no response header in time.
func (s *Server) StreamStalled(sess *Session) {
	n := sess.stall.consecutive.Add(1)
	if n < StallThreshold {
		return
	}
	was := sess.stalled()
	sess.stall.until.Store(s.cfg.Now().Add(StallQuarantine).UnixNano())
	if was {
		return
	}
	if s.m != nil {
		s.m.refusedTotal.WithLabelValues("stalled_streams").Inc()
	}
	s.log.Warn("tunnel: connector stalls its streams; choosing it last", "connector", sess.Name, "site", sess.Site,
		"stalled_in_a_row", n, "for", StallQuarantine.String())
}

// StreamAnswered records a stream of sess that got its response header.
func (s *Server) StreamAnswered(sess *Session) {
	if sess.stall.consecutive.Load() != 0 {
		sess.stall.consecutive.Store(0)
	}
	if sess.stall.until.Load() != 0 && sess.stall.until.Swap(0) != 0 {
		s.log.Info("tunnel: connector answers its streams again", "connector", sess.Name, "site", sess.Site)
	}
}
