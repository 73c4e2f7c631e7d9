package tunnel

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/time/rate"
)

// Session is one connector's tunnel as the gateway sees it: a yamux session on
// which the gateway opens one stream per device request.
type Session struct {
	Name        string
	Site        string
	Transport   string
	Version     string
	RemoteAddr  net.Addr
	ConnectedAt time.Time
	// CertNotAfter is when the connector's certificate expires.
	CertNotAfter time.Time
	// Capabilities are those the hello listed.
	Capabilities []string

	mux  *yamux.Session
	ctrl *controlWriter
	log  *slog.Logger

	routes   atomic.Pointer[[]Route]
	health   atomic.Pointer[map[string]bool]
	rtt      atomic.Int64 // nanoseconds, 0 until the first pong
	draining atomic.Bool
	// openMu orders Open against a drain: once the drain is acknowledged no
	// stream is opened, and every stream opened before it reached the wire first.
	openMu   sync.RWMutex
	inflight atomic.Int64
	lastPong atomic.Int64 // unix nanoseconds
	stall    stallState   // stall.go
	// routeUpdates bounds the route sets a connector may publish: each one
	// rebuilds the gateway's routing table (see handleControl).
	routeUpdates *rate.Limiter

	closeOnce sync.Once
	done      chan struct{}
}

// Key is the registry key of a connector: site/name.
func (s *Session) Key() string { return s.Site + "/" + s.Name }

// Routes returns the routes the gateway accepted from this connector.
func (s *Session) Routes() []Route {
	if p := s.routes.Load(); p != nil {
		return *p
	}
	return nil
}

// Healthy reports whether the connector last reported the role healthy (roles it
// has not reported on count as healthy).
func (s *Session) Healthy(roleID string) bool {
	if p := s.health.Load(); p != nil {
		if h, ok := (*p)[roleID]; ok {
			return h
		}
	}
	return true
}

// RTT is the round-trip time of the last control ping, or 0.
func (s *Session) RTT() time.Duration { return time.Duration(s.rtt.Load()) }

// Draining reports whether the connector said it is draining.
func (s *Session) Draining() bool { return s.draining.Load() }

// StreamsOpen is the number of request streams open on the session.
func (s *Session) StreamsOpen() int {
	n := s.mux.NumStreams() - 1 // the control stream
	if n < 0 {
		return 0
	}
	return n
}

// InFlight is the number of requests the gateway is forwarding on the session.
func (s *Session) InFlight() int64 { return s.inflight.Load() }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Errors of Open. Nothing of the request reached the connector, so any request
// may be retried on another connector.
var (
	ErrSessionClosed = errors.New("tunnel: session closed")
	ErrDraining      = errors.New("tunnel: connector is draining")
)

// Open opens a fresh stream for one request. The caller must call Release when
// the request is finished, and close the stream.
func (s *Session) Open() (*yamux.Stream, error) {
	s.openMu.RLock()
	defer s.openMu.RUnlock()
	if s.draining.Load() {
		return nil, ErrDraining
	}
	st, err := s.mux.OpenStream()
	if err != nil {
		if errors.Is(err, yamux.ErrSessionShutdown) {
			return nil, ErrSessionClosed
		}
		return nil, err
	}
	s.inflight.Add(1)
	return st, nil
}

// Release marks a request opened with Open as finished.
func (s *Session) Release() { s.inflight.Add(-1) }

// Send writes a control message to the connector.
func (s *Session) Send(m *Message) error { return s.ctrl.write(m) }

// Close ends the session.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		_ = s.mux.Close()
	})
}

func (s *Session) setRoutes(r []Route) { s.routes.Store(&r) }

// markDraining stops new streams; it returns false when already draining.
func (s *Session) markDraining() bool {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	return !s.draining.Swap(true)
}

func (s *Session) setHealth(hs []RoleHealth) {
	m := make(map[string]bool, len(hs))
	for _, h := range hs {
		m[h.RoleID] = h.Healthy
	}
	s.health.Store(&m)
}

// pingLoop measures RTT and closes a session whose connector stopped answering.
func (s *Session) pingLoop(interval, timeout time.Duration, now func() time.Time) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var seq uint64
	s.lastPong.Store(now().UnixNano())
	// The first ping goes at once so the RTT is known from the start.
	first := make(chan time.Time, 1)
	first <- now()
	for {
		select {
		case <-s.done:
			return
		case <-first:
		case <-t.C:
		}
		if now().Sub(time.Unix(0, s.lastPong.Load())) > timeout {
			s.log.Warn("tunnel: connector stopped answering pings; closing", "connector", s.Name, "site", s.Site)
			s.Close()
			return
		}
		seq++
		if err := s.Send(&Message{Type: MsgPing, Seq: seq, Time: now().UnixNano()}); err != nil {
			s.Close()
			return
		}
	}
}

// readControl reads the connector's control messages until the stream ends.
func (s *Session) readControl(r *bufio.Reader, srv *Server) {
	defer s.Close()
	for {
		m, err := ReadMessage(r)
		if err != nil {
			select {
			case <-s.done:
			default:
				s.log.Debug("tunnel: control stream ended", "connector", s.Name, "err", err)
			}
			return
		}
		srv.handleControl(s, m)
	}
}
