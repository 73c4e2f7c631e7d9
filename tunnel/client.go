package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// ClientConfig configures the connector side of the tunnel.
type ClientConfig struct {
	Name    string
	Site    string
	Version string
	Routes  []Route

	// Host is the gateway service's host name; Instances its instance count.
	// Instance i takes TCP-TLS on TCPPortBase+i.
	Host        string
	Instances   int
	TCPPortBase int
	// TLS carries the connector's client certificate and the roots that verify
	// the gateway; ServerName defaults to Host.
	TLS *tls.Config
	// Transports are tried in order for each instance (the fallback ladder). Nil
	// means TCP-TLS only.
	Transports []Transport
	// HandshakeTimeout bounds dial, TLS and hello. Zero means 10 s.
	HandshakeTimeout time.Duration
	// RetryPreferred is how often an instance on a lower rung of the ladder
	// tries the better ones. Zero means DefaultRetryPreferred.
	RetryPreferred time.Duration
	Backoff        Backoff
	// PingInterval and PingTimeout as for the server. Zero means 5 s and 15 s.
	PingInterval           time.Duration
	PingTimeout            time.Duration
	KeepAliveInterval      time.Duration
	ConnectionWriteTimeout time.Duration
	StreamWindow           uint32
	// ReadHeaderTimeout bounds reading a request's header from a stream.
	ReadHeaderTimeout time.Duration
	Logger            *slog.Logger
	Metrics           *ClientMetrics
	Now               func() time.Time
}

// Transport is one rung of the fallback ladder: it dials instance i and returns a
// connection with TLS established.
type Transport interface {
	Name() string
	Dial(ctx context.Context, instance int) (*tls.Conn, error)
}

func (c *ClientConfig) setDefaults() {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.RetryPreferred == 0 {
		c.RetryPreferred = DefaultRetryPreferred
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff()
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
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *ClientConfig) validate() error {
	var errs []error
	h := Hello{Name: c.Name, Site: c.Site, Version: c.Version, Routes: c.Routes}
	if err := h.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Host == "" {
		errs = append(errs, errors.New("the gateway host is required"))
	}
	if c.Instances < 1 || c.Instances > 16 {
		errs = append(errs, fmt.Errorf("instances %d is not 1 to 16", c.Instances))
	}
	if c.Transports == nil {
		if c.TCPPortBase < 1 || c.TCPPortBase+c.Instances-1 > 65535 {
			errs = append(errs, fmt.Errorf("tcp port base %d out of range", c.TCPPortBase))
		}
		if c.TLS == nil {
			errs = append(errs, errors.New("TLS is required"))
		} else if len(c.TLS.Certificates) == 0 && c.TLS.GetClientCertificate == nil {
			errs = append(errs, errors.New("TLS needs the connector's certificate"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("tunnel client: %w", errors.Join(errs...))
	}
	return nil
}

// InstanceStatus is the state of the tunnel to one gateway instance.
type InstanceStatus struct {
	Instance  int            `json:"instance"`
	Connected bool           `json:"connected"`
	Transport string         `json:"transport,omitempty"`
	Address   string         `json:"address,omitempty"`
	Since     time.Time      `json:"since,omitempty"`
	RTT       time.Duration  `json:"rtt_ns"`
	Streams   int            `json:"streams"`
	Draining  bool           `json:"gateway_draining"`
	LastError string         `json:"last_error,omitempty"`
	Refused   []RefusedRoute `json:"refused_routes,omitempty"`
	// PreferredError is why the better transports failed the last time an
	// instance on a lower rung tried them.
	PreferredError string `json:"preferred_error,omitempty"`
}

// Client keeps one tunnel up to every gateway instance and serves the streams.
type Client struct {
	cfg     ClientConfig
	handler http.Handler
	ymux    *yamux.Config
	log     *slog.Logger
	insts   []*instance
	health  atomic.Pointer[[]RoleHealth]
	ext     func(inst int, m *Message)

	draining atomic.Bool
	wg       sync.WaitGroup
}

// instance is the state of one gateway instance's tunnel.
type instance struct {
	idx       int
	mu        sync.Mutex
	cs        *clientSession // nil while down
	lastUp    time.Time
	lastError string
	refused   []RefusedRoute
	// rung is the ladder rung that last worked; preferredError why the better
	// ones failed when last tried.
	rung           int
	preferredError string
}

// clientSession is a live tunnel to one instance.
type clientSession struct {
	inst      int
	transport string
	rung      int
	retiring  atomic.Bool // replaced by a session on a better rung
	addr      string
	since     time.Time
	mux       *yamux.Session
	ctrl      *controlWriter
	srv       *http.Server
	rtt       atomic.Int64
	lastPong  atomic.Int64
	gwDrain   atomic.Bool // the gateway said it is draining
	drainAck  chan struct{}
	ackOnce   sync.Once
}

// NewClient checks the configuration. handler serves every request stream.
func NewClient(cfg ClientConfig, handler http.Handler) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("tunnel client: a handler is required")
	}
	// The client opens no streams: no open timeout.
	y, err := muxConfig(cfg.KeepAliveInterval, cfg.ConnectionWriteTimeout, 0, cfg.StreamWindow, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("tunnel client: %w", err)
	}
	c := &Client{cfg: cfg, handler: handler, ymux: y, log: cfg.Logger}
	if c.cfg.Transports == nil {
		c.cfg.Transports = []Transport{&TCPTLS{Host: cfg.Host, PortBase: cfg.TCPPortBase, TLS: cfg.TLS, Timeout: cfg.HandshakeTimeout}}
	}
	for i := 0; i < cfg.Instances; i++ {
		c.insts = append(c.insts, &instance{idx: i})
	}
	return c, nil
}

// SetExtension installs the handler of control messages beyond the tunnel's own
// (notifications). Set it before Run.
func (c *Client) SetExtension(f func(instance int, m *Message)) { c.ext = f }

// Run keeps a tunnel up to every instance until ctx is done, then closes them.
func (c *Client) Run(ctx context.Context) error {
	for _, in := range c.insts {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.runInstance(ctx, in)
		}()
	}
	c.wg.Wait()
	return nil
}

func (c *Client) runInstance(ctx context.Context, in *instance) {
	attempt := 0
	jitter := jitterSource()
	for ctx.Err() == nil && !c.draining.Load() {
		up, err := c.connectAndServe(ctx, in)
		if ctx.Err() != nil || c.draining.Load() {
			return
		}
		if up {
			attempt = 0
		}
		if err != nil {
			in.mu.Lock()
			in.lastError = err.Error()
			in.mu.Unlock()
			c.log.Warn("tunnel: gateway instance unreachable", "instance", in.idx, "err", err)
		}
		in.mu.Lock()
		lastUp := in.lastUp
		in.mu.Unlock()
		d := c.cfg.Backoff.Delay(attempt, lastUp, c.cfg.Now(), jitter)
		attempt++
		if c.cfg.Metrics != nil {
			c.cfg.Metrics.reconnects.WithLabelValues(strconv.Itoa(in.idx)).Inc()
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// connectAndServe dials the instance over the ladder, runs the session until it
// ends (following it onto a better rung when one comes up), and reports whether
// a session was established.
func (c *Client) connectAndServe(ctx context.Context, in *instance) (bool, error) {
	cs, err := c.connect(ctx, in)
	if err != nil {
		return false, err
	}
	for cs != nil {
		cs = c.serve(ctx, in, cs)
	}
	return true, nil
}

// handshake sends the hello, reads the ack and starts yamux.
func (c *Client) handshake(conn *tls.Conn, in *instance, transport string) (*clientSession, error) {
	_ = conn.SetDeadline(c.cfg.Now().Add(c.cfg.HandshakeTimeout))
	hello := &Hello{Name: c.cfg.Name, Site: c.cfg.Site, Version: c.cfg.Version, Routes: c.cfg.Routes}
	if err := WriteHello(conn, hello); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	ack, err := ReadAck(conn)
	if err != nil {
		return nil, fmt.Errorf("read ack: %w", err)
	}
	if ack.Error != "" {
		return nil, fmt.Errorf("gateway refused the connector: %s", ack.Error)
	}
	if ack.Instance != in.idx {
		c.log.Warn("tunnel: gateway answered as another instance", "dialed", in.idx, "answered", ack.Instance)
	}
	for _, r := range ack.Refused {
		c.log.Warn("tunnel: gateway refused a route", "instance", in.idx, "role_id", r.RoleID, "kind", r.Kind, "reason", r.Reason)
	}
	_ = conn.SetDeadline(time.Time{})
	bc := newBatchConn(conn)
	mux, err := yamux.Server(bc, c.ymux)
	if err != nil {
		bc.Close()
		return nil, err
	}
	actx, cancel := context.WithTimeout(context.Background(), c.cfg.HandshakeTimeout)
	defer cancel()
	ctrl, err := mux.AcceptStreamWithContext(actx)
	if err != nil {
		mux.Close()
		return nil, fmt.Errorf("accept control stream: %w", err)
	}
	cs := &clientSession{
		inst:      in.idx,
		transport: transport,
		addr:      conn.RemoteAddr().String(),
		since:     c.cfg.Now(),
		mux:       mux,
		ctrl:      &controlWriter{w: ctrl, timeout: c.cfg.ConnectionWriteTimeout, setDL: ctrl.SetWriteDeadline},
		drainAck:  make(chan struct{}),
	}
	in.mu.Lock()
	in.refused = ack.Refused
	in.mu.Unlock()
	go c.readControl(cs, bufio.NewReader(ctrl))
	return cs, nil
}

// serve runs the HTTP server on the session's streams until the session ends,
// or until a better rung of the ladder gives a new session: then the old one is
// retired and the new one returned.
func (c *Client) serve(ctx context.Context, in *instance, cs *clientSession) *clientSession {
	cs.srv = &http.Server{
		Handler:           c.handler,
		ReadHeaderTimeout: c.cfg.ReadHeaderTimeout,
		IdleTimeout:       c.cfg.ReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, instanceKey{}, cs.inst)
		},
	}
	in.mu.Lock()
	prev := in.cs
	in.cs = cs
	in.lastUp = c.cfg.Now()
	in.lastError = ""
	in.rung = cs.rung
	if cs.rung == 0 {
		in.preferredError = ""
	}
	in.mu.Unlock()
	if prev != nil {
		c.log.Info("tunnel: moved up the transport ladder", "instance", in.idx, "from", prev.transport, "to", cs.transport, "address", cs.addr)
	} else {
		c.log.Info("tunnel: connected to gateway instance", "instance", in.idx, "transport", cs.transport, "address", cs.addr)
	}
	if h := c.health.Load(); h != nil {
		_ = cs.ctrl.write(&Message{Type: MsgHealth, Health: *h})
	}
	if c.draining.Load() {
		// The session came up while Drain ran, after it listed the sessions:
		// it drains itself.
		go c.retireSession(cs)
	}
	go c.pingLoop(cs)
	stop := context.AfterFunc(ctx, func() { cs.mux.Close() })
	served := make(chan struct{})
	var ln net.Listener = sessionListener{cs.mux}
	if sh, ok := c.handler.(StreamHandler); ok {
		ln = newStreamDispatcher(cs.mux, sh, cs.inst)
	}
	go func() {
		defer close(served)
		_ = cs.srv.Serve(ln)
	}()
	var next *clientSession
	if cs.rung > 0 {
		upCtx, cancelUp := context.WithCancel(ctx)
		upgraded := make(chan *clientSession, 1)
		upDone := make(chan struct{})
		go func() {
			defer close(upDone)
			c.tryUpgrade(upCtx, in, cs, upgraded)
		}()
		select {
		case <-cs.mux.CloseChan():
		case next = <-upgraded:
		}
		cancelUp()
		<-upDone
		if next == nil {
			select {
			case next = <-upgraded:
			default:
			}
		}
		if next != nil && (ctx.Err() != nil || c.draining.Load()) {
			next.mux.Close()
			next = nil
		}
	} else {
		<-cs.mux.CloseChan()
	}
	stop()
	if next != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.retireSession(cs)
			<-served
		}()
		return next
	}
	<-cs.mux.CloseChan()
	cs.srv.Close()
	<-served
	in.mu.Lock()
	in.cs = nil
	in.lastUp = c.cfg.Now()
	in.mu.Unlock()
	c.log.Info("tunnel: disconnected from gateway instance", "instance", in.idx, "transport", cs.transport)
	return nil
}

func (c *Client) readControl(cs *clientSession, r *bufio.Reader) {
	defer cs.mux.Close()
	for {
		m, err := ReadMessage(r)
		if err != nil {
			return
		}
		switch m.Type {
		case MsgPing:
			_ = cs.ctrl.write(&Message{Type: MsgPong, Seq: m.Seq, Time: m.Time})
		case MsgPong:
			now := c.cfg.Now()
			cs.lastPong.Store(now.UnixNano())
			if rtt := now.Sub(time.Unix(0, m.Time)); m.Time > 0 && rtt >= 0 {
				cs.rtt.Store(int64(rtt))
			}
		case MsgDrain:
			if c.draining.Load() || cs.retiring.Load() {
				cs.ackOnce.Do(func() { close(cs.drainAck) })
			} else if !cs.gwDrain.Swap(true) {
				c.log.Info("tunnel: gateway instance is draining", "instance", cs.inst)
			}
		case MsgRoutesAck:
			for _, rr := range m.Refused {
				c.log.Warn("tunnel: gateway refused a route", "instance", cs.inst, "role_id", rr.RoleID, "reason", rr.Reason)
			}
		default:
			if c.ext != nil {
				c.ext(cs.inst, m)
			}
		}
	}
}

func (c *Client) pingLoop(cs *clientSession) {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	cs.lastPong.Store(c.cfg.Now().UnixNano())
	var seq uint64
	first := make(chan time.Time, 1)
	first <- c.cfg.Now()
	for {
		select {
		case <-cs.mux.CloseChan():
			return
		case <-first:
		case <-t.C:
		}
		if c.cfg.Now().Sub(time.Unix(0, cs.lastPong.Load())) > c.cfg.PingTimeout {
			c.log.Warn("tunnel: gateway stopped answering pings; reconnecting", "instance", cs.inst)
			cs.mux.Close()
			return
		}
		seq++
		if err := cs.ctrl.write(&Message{Type: MsgPing, Seq: seq, Time: c.cfg.Now().UnixNano()}); err != nil {
			cs.mux.Close()
			return
		}
	}
}

// SetHealth publishes role health to every connected instance, and to instances
// that connect later.
func (c *Client) SetHealth(hs []RoleHealth) {
	c.health.Store(&hs)
	c.Broadcast(&Message{Type: MsgHealth, Health: hs})
}

// Broadcast sends a control message to every connected instance and returns how
// many it reached.
func (c *Client) Broadcast(m *Message) int {
	n := 0
	for _, cs := range c.sessions() {
		if cs.ctrl.write(m) == nil {
			n++
		}
	}
	return n
}

// SendTo sends a control message to one instance.
func (c *Client) SendTo(inst int, m *Message) error {
	if inst < 0 || inst >= len(c.insts) {
		return fmt.Errorf("tunnel: no instance %d", inst)
	}
	in := c.insts[inst]
	in.mu.Lock()
	cs := in.cs
	in.mu.Unlock()
	if cs == nil {
		return fmt.Errorf("tunnel: instance %d is not connected", inst)
	}
	return cs.ctrl.write(m)
}

func (c *Client) sessions() []*clientSession {
	var out []*clientSession
	for _, in := range c.insts {
		in.mu.Lock()
		if in.cs != nil {
			out = append(out, in.cs)
		}
		in.mu.Unlock()
	}
	return out
}

// Status reports the state of every instance's tunnel.
func (c *Client) Status() []InstanceStatus {
	out := make([]InstanceStatus, 0, len(c.insts))
	for _, in := range c.insts {
		in.mu.Lock()
		st := InstanceStatus{Instance: in.idx, LastError: in.lastError, Refused: in.refused, PreferredError: in.preferredError}
		if cs := in.cs; cs != nil {
			st.Connected = true
			st.Transport = cs.transport
			st.Address = cs.addr
			st.Since = cs.since
			st.RTT = time.Duration(cs.rtt.Load())
			st.Streams = max(cs.mux.NumStreams()-1, 0)
			st.Draining = cs.gwDrain.Load()
		}
		in.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Connected counts the instances with a live session.
func (c *Client) Connected() int { return len(c.sessions()) }

// Drain sends the drain notice to every instance, waits until each has
// acknowledged it (no new stream follows) and its streams are done, then closes
// the tunnels and stops reconnecting. ctx bounds the wait; streams still open
// when it ends are cut.
func (c *Client) Drain(ctx context.Context) error {
	c.draining.Store(true)
	sessions := c.sessions()
	for _, cs := range sessions {
		_ = cs.ctrl.write(&Message{Type: MsgDrain})
	}
	var err error
	for _, cs := range sessions {
		select {
		case <-cs.drainAck:
		case <-cs.mux.CloseChan():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for _, cs := range sessions {
	wait:
		// A closed session still counts the streams it had: stop at its close.
		for cs.mux.NumStreams() > 1 && ctx.Err() == nil {
			select {
			case <-cs.mux.CloseChan():
				break wait
			case <-ctx.Done():
			case <-t.C:
			}
		}
		cs.mux.Close()
	}
	// Sessions that came up during the drain retire themselves; wait for them.
	for _, cs := range c.sessions() {
		select {
		case <-cs.mux.CloseChan():
		case <-ctx.Done():
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// instanceKey is the context key of the gateway instance a stream came from.
type instanceKey struct{}

// InstanceFromContext returns the gateway instance index of the stream serving a
// request, and false outside the tunnel.
func InstanceFromContext(ctx context.Context) (int, bool) {
	i, ok := ctx.Value(instanceKey{}).(int)
	return i, ok
}

// sessionListener serves a yamux session's streams as a net.Listener. Closing it
// closes the session.
type sessionListener struct{ s *yamux.Session }

func (l sessionListener) Accept() (net.Conn, error) { return l.s.Accept() }
func (l sessionListener) Close() error              { return l.s.Close() }
func (l sessionListener) Addr() net.Addr            { return l.s.Addr() }

// TCPTLS is the preferred transport: TLS straight to the instance's tunnel port.
type TCPTLS struct {
	Host     string
	PortBase int
	TLS      *tls.Config
	Timeout  time.Duration
	// Dialer dials TCP; nil means a net.Dialer.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Name is the transport label.
func (t *TCPTLS) Name() string { return TransportTCPTLS }

// Dial connects to instance i and completes TLS.
func (t *TCPTLS) Dial(ctx context.Context, i int) (*tls.Conn, error) {
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.PortBase+i))
	dial := t.Dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := t.TLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = t.Host
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	return conn, nil
}
