package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/time/rate"

	"github.com/cmg-gateway/cmg/pki"
)

// Transports: the transport label of the tunnel metrics and of /api/v1/status.
const (
	TransportTCPTLS = "tcp_tls"
	TransportHTTPS  = "https"
	TransportProxy  = "https_proxy"
)

// AllowList decides which connectors may connect and what they may publish: the
// per-site allow-list of the gateway configuration (DESIGN section 3).
type AllowList interface {
	// AllowConnector returns nil when the connector site/name may connect.
	AllowConnector(site, name string) error
	// AllowRoute returns nil when the connector may publish the route.
	AllowRoute(site, name string, r Route) error
}

// ServerConfig configures the gateway side of the tunnel.
type ServerConfig struct {
	// Instance is this gateway instance's index, Instances the service's count.
	Instance  int
	Instances int
	// TLS is the server TLS configuration for tunnel connections: the gateway's
	// certificate and client verification against the connector CA
	// (tls.RequireAndVerifyClientCert). Required.
	TLS *tls.Config
	// Allow is the allow-list. Required.
	Allow AllowList
	// HandshakeTimeout bounds TLS plus hello. Zero means 10 s.
	HandshakeTimeout time.Duration
	// PingInterval is how often the gateway pings each connector on the control
	// stream (for RTT); a connector silent for PingTimeout is dropped. Zero means
	// 5 s and 15 s.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// KeepAliveInterval is the yamux keepalive; ConnectionWriteTimeout bounds a
	// yamux write. Zero means 5 s and 10 s: a silent connector is gone within
	// seconds.
	KeepAliveInterval      time.Duration
	ConnectionWriteTimeout time.Duration
	// StreamWindow is the yamux per-stream receive window. Zero means 1 MiB.
	StreamWindow uint32
	Logger       *slog.Logger
	Metrics      *ServerMetrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *ServerConfig) setDefaults() {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 5 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 3 * c.PingInterval
	}
	if c.KeepAliveInterval == 0 {
		c.KeepAliveInterval = 5 * time.Second
	}
	if c.ConnectionWriteTimeout == 0 {
		c.ConnectionWriteTimeout = 10 * time.Second
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *ServerConfig) validate() error {
	var errs []error
	if c.TLS == nil {
		errs = append(errs, errors.New("TLS is required"))
	} else if c.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		errs = append(errs, errors.New("TLS must require and verify connector certificates"))
	}
	if c.Allow == nil {
		errs = append(errs, errors.New("an allow-list is required"))
	}
	if c.Instances < 1 || c.Instances > 16 {
		errs = append(errs, fmt.Errorf("instances %d is not 1 to 16", c.Instances))
	}
	if c.Instance < 0 || c.Instance >= c.Instances {
		errs = append(errs, fmt.Errorf("instance %d is not 0 to instances-1", c.Instance))
	}
	if c.StreamWindow < 256<<10 {
		errs = append(errs, errors.New("stream window below yamux's 256 KiB minimum"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("tunnel server: %w", errors.Join(errs...))
	}
	return nil
}

// Server accepts connector tunnels for one gateway instance.
type Server struct {
	cfg   ServerConfig
	reg   *Registry
	ymux  *yamux.Config
	log   *slog.Logger
	m     *ServerMetrics
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	ext   Extension
}

// NewServer checks the configuration and returns a server with an empty registry.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	y, err := muxConfig(cfg.KeepAliveInterval, cfg.ConnectionWriteTimeout, cfg.ConnectionWriteTimeout, cfg.StreamWindow, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("tunnel server: %w", err)
	}
	return &Server{
		cfg:   cfg,
		reg:   NewRegistry(),
		ymux:  y,
		log:   cfg.Logger,
		m:     cfg.Metrics,
		conns: make(map[net.Conn]struct{}),
	}, nil
}

// Registry is the server's registry of live sessions.
func (s *Server) Registry() *Registry { return s.reg }

// Serve accepts TCP connections on ln, terminates TLS and runs a session for each,
// until ctx is done; then it closes the listener and every session it accepted.
func (s *Server) Serve(ctx context.Context, ln net.Listener, transport string) error {
	return s.acceptLoop(ctx, ln, func(c net.Conn) { s.handleRaw(ctx, c, transport) })
}

// acceptLoop accepts on ln and runs handle for each connection until ctx is
// done; then it closes the listener and every session.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.closeAll()
				s.wg.Wait()
				return nil
			}
			if isTemporary(err) {
				// Out of descriptors and the like: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("tunnel: accept: %w", err)
		}
		delay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			handle(c)
		}()
	}
}

func isTemporary(err error) bool {
	type temporary interface{ Temporary() bool }
	var t temporary
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) handleRaw(ctx context.Context, raw net.Conn, transport string) {
	conn := tls.Server(raw, s.cfg.TLS)
	_ = raw.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
	if err := conn.HandshakeContext(ctx); err != nil {
		if errors.Is(err, io.EOF) {
			// Closed before a ClientHello: a TCP port check (load balancer,
			// cmg analyze), not a refused connector.
			raw.Close()
			return
		}
		s.refused("unknown", transport, "tls")
		s.log.Info("tunnel: TLS handshake failed", "remote", raw.RemoteAddr().String(), "transport", transport, "err", err)
		raw.Close()
		return
	}
	s.ServeTLS(ctx, conn, transport)
}

// ServeTLS runs a session on a connection whose TLS handshake is done (the HTTPS
// transport hands over its upgraded connections here). It returns when the
// session ends.
func (s *Server) ServeTLS(ctx context.Context, conn *tls.Conn, transport string) {
	if !s.track(conn) {
		conn.Close()
		return
	}
	defer s.untrack(conn)
	sess, err := s.admit(conn, transport)
	if err != nil {
		conn.Close()
		return
	}
	if sess.analyzer() {
		s.runProbes(ctx, sess)
		return
	}
	s.run(ctx, sess)
}

// admit checks the connector's identity and hello, answers the ack and starts
// yamux. On error the connection is to be closed.
func (s *Server) admit(conn *tls.Conn, transport string) (*Session, error) {
	_ = conn.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
	state := conn.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		s.refused("unknown", transport, "identity")
		return nil, errors.New("no connector certificate")
	}
	leaf := state.PeerCertificates[0]
	site, name, ok := connectorIdentity(leaf.URIs)
	if !ok {
		s.refused("unknown", transport, "identity")
		s.log.Warn("tunnel: connector certificate carries no cmg://site/name identity", "remote", conn.RemoteAddr().String())
		return nil, errors.New("no connector identity")
	}
	hello, err := ReadHello(conn)
	if err != nil {
		s.refused(s.label(site, name), transport, "hello")
		s.log.Warn("tunnel: bad hello", "remote", conn.RemoteAddr().String(), "site", site, "connector", name, "err", err)
		if !errors.Is(err, io.EOF) && !errors.Is(err, ErrBadMagic) {
			_ = WriteAck(conn, &Ack{Instance: s.cfg.Instance, Instances: s.cfg.Instances, Error: "bad hello: " + err.Error()})
		}
		return nil, err
	}
	if err := s.cfg.Allow.AllowConnector(site, name); err != nil {
		s.refused("unknown", transport, "not_allowed")
		s.log.Warn("tunnel: connector not allowed", "remote", conn.RemoteAddr().String(), "site", site, "connector", name, "err", err)
		_ = WriteAck(conn, &Ack{Instance: s.cfg.Instance, Instances: s.cfg.Instances, Error: err.Error()})
		return nil, err
	}
	if hello.Site != site || hello.Name != name {
		s.refused(name, transport, "identity_mismatch")
		err := fmt.Errorf("hello names %s/%s but the certificate is %s/%s", hello.Site, hello.Name, site, name)
		s.log.Warn("tunnel: connector identity mismatch", "remote", conn.RemoteAddr().String(), "err", err)
		_ = WriteAck(conn, &Ack{Instance: s.cfg.Instance, Instances: s.cfg.Instances, Error: err.Error()})
		return nil, err
	}
	accepted, refusedRoutes := s.filterRoutes(site, name, hello.Routes)
	ack := &Ack{Instance: s.cfg.Instance, Instances: s.cfg.Instances, Accepted: accepted, Refused: refusedRoutes}
	if err := WriteAck(conn, ack); err != nil {
		s.refused(name, transport, "hello")
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	bc := newBatchConn(conn)
	mux, err := yamux.Client(bc, s.ymux)
	if err != nil {
		bc.Close()
		return nil, err
	}
	ctrl, err := mux.OpenStream()
	if err != nil {
		mux.Close()
		s.refused(name, transport, "control")
		return nil, err
	}
	sess := &Session{
		Name:         name,
		Site:         site,
		Transport:    transport,
		Version:      hello.Version,
		RemoteAddr:   conn.RemoteAddr(),
		ConnectedAt:  s.cfg.Now(),
		CertNotAfter: leaf.NotAfter,
		Capabilities: hello.Capabilities,
		routeUpdates: rate.NewLimiter(routeUpdateRate, routeUpdateBurst),
		mux:          mux,
		ctrl:         &controlWriter{w: ctrl, timeout: s.cfg.ConnectionWriteTimeout, setDL: ctrl.SetWriteDeadline},
		log:          s.log,
		done:         make(chan struct{}),
	}
	sess.setRoutes(accepted)
	go sess.readControl(bufio.NewReader(ctrl), s)
	for _, r := range refusedRoutes {
		s.log.Warn("tunnel: route refused", "connector", name, "site", site, "role_id", r.RoleID, "kind", r.Kind, "reason", r.Reason)
		if s.m != nil {
			s.m.refusedTotal.WithLabelValues("route").Inc()
		}
	}
	return sess, nil
}

// run registers the session and serves it until it ends.
func (s *Server) run(ctx context.Context, sess *Session) {
	if old := s.reg.add(sess); old != nil {
		s.log.Info("tunnel: connector reconnected; retiring its old session", "connector", sess.Name, "site", sess.Site,
			"old_transport", old.Transport, "transport", sess.Transport)
		go old.retire(retireGrace)
	}
	if s.m != nil {
		s.m.connects.WithLabelValues(sess.Name, sess.Transport, "success").Inc()
	}
	s.log.Info("tunnel: connector connected", "connector", sess.Name, "site", sess.Site, "transport", sess.Transport,
		"remote", sess.RemoteAddr.String(), "routes", len(sess.Routes()))
	go sess.pingLoop(s.cfg.PingInterval, s.cfg.PingTimeout, s.cfg.Now)
	go s.refuseStreams(sess)
	stop := context.AfterFunc(ctx, sess.Close)
	<-sess.mux.CloseChan()
	stop()
	close(sess.done)
	s.reg.remove(sess)
	s.log.Info("tunnel: connector disconnected", "connector", sess.Name, "site", sess.Site, "transport", sess.Transport)
}

// refuseStreams closes every stream the connector opens: only the gateway opens
// streams (DESIGN section 5).
func (s *Server) refuseStreams(sess *Session) {
	for {
		st, err := sess.mux.AcceptStream()
		if err != nil {
			return
		}
		if s.m != nil {
			s.m.refusedTotal.WithLabelValues("connector_stream").Inc()
		}
		s.log.Warn("tunnel: refused a stream opened by the connector", "connector", sess.Name, "site", sess.Site)
		st.Close()
	}
}

func (s *Server) filterRoutes(site, name string, routes []Route) (accepted []Route, refused []RefusedRoute) {
	seen := map[string]bool{}
	for _, r := range routes {
		if seen[r.RoleID] {
			refused = append(refused, RefusedRoute{Route: r, Reason: "duplicate role_id"})
			continue
		}
		seen[r.RoleID] = true
		if err := s.cfg.Allow.AllowRoute(site, name, r); err != nil {
			refused = append(refused, RefusedRoute{Route: r, Reason: err.Error()})
			continue
		}
		accepted = append(accepted, r)
	}
	return accepted, refused
}

// Route updates a session may send: routeUpdateBurst at once, then
// routeUpdateRate a second. Far above what a connector's reloads need.
const (
	routeUpdateRate  = rate.Limit(2)
	routeUpdateBurst = 20
)

// handleControl acts on one control message from a connector.
func (s *Server) handleControl(sess *Session, m *Message) {
	switch m.Type {
	case MsgPing:
		_ = sess.Send(&Message{Type: MsgPong, Seq: m.Seq, Time: m.Time})
	case MsgPong:
		now := s.cfg.Now()
		sess.lastPong.Store(now.UnixNano())
		if m.Time > 0 {
			if rtt := now.Sub(time.Unix(0, m.Time)); rtt >= 0 {
				sess.rtt.Store(int64(rtt))
			}
		}
	case MsgRoutes:
		if !sess.routeUpdates.AllowN(s.cfg.Now(), 1) {
			// An honest connector publishes its routes on connect and on a
			// reload; a stream of them is a connector rebuilding every
			// instance's routing table on purpose.
			if s.m != nil {
				s.m.refusedTotal.WithLabelValues("route_flood").Inc()
			}
			s.log.Warn("tunnel: connector floods route updates; closing", "connector", sess.Name, "site", sess.Site,
				"limit_per_second", float64(routeUpdateRate), "burst", routeUpdateBurst)
			sess.Close()
			return
		}
		accepted, refused := s.filterRoutes(sess.Site, sess.Name, m.Routes)
		sess.setRoutes(accepted)
		s.reg.routesChanged()
		_ = sess.Send(&Message{Type: MsgRoutesAck, Routes: accepted, Refused: refused})
	case MsgHealth:
		sess.setHealth(m.Health)
	case MsgDrain:
		if sess.markDraining() {
			s.log.Info("tunnel: connector is draining; no new streams go to it", "connector", sess.Name, "site", sess.Site)
			s.reg.changed()
		}
		// The answer tells the connector that no stream follows: every stream
		// opened before markDraining was written to the wire before this.
		_ = sess.Send(&Message{Type: MsgDrain})
	default:
		s.handleExtension(sess, m)
	}
}

// Extension handles control message types beyond the tunnel's own (notifications
// and delivery reports). Set it before Serve.
type Extension func(sess *Session, m *Message)

// SetExtension installs the handler of extension messages.
func (s *Server) SetExtension(f Extension) { s.ext = f }

func (s *Server) handleExtension(sess *Session, m *Message) {
	if s.ext != nil {
		s.ext(sess, m)
	}
}

// Drain tells every connector that this instance is draining.
func (s *Server) Drain() {
	for _, sess := range s.reg.Sessions() {
		_ = sess.Send(&Message{Type: MsgDrain})
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// closeAll closes every tunnel connection; the server takes no more.
func (s *Server) closeAll() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (s *Server) refused(connector, transport, reason string) {
	if s.m == nil {
		return
	}
	s.m.refusedTotal.WithLabelValues(reason).Inc()
	s.m.connects.WithLabelValues(connector, transport, "refused").Inc()
}

// label is the connector label for a refused connection: the name when the
// allow-list knows it, else "unknown" (labels must stay bounded).
func (s *Server) label(site, name string) string {
	if s.cfg.Allow.AllowConnector(site, name) == nil {
		return name
	}
	return "unknown"
}

func connectorIdentity(uris []*url.URL) (site, name string, ok bool) {
	for _, u := range uris {
		if site, name, ok := pki.ParseConnectorURI(u); ok {
			return site, name, true
		}
	}
	return "", "", false
}
