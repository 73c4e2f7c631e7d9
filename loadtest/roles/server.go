package roles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// TokenRequest is what CCM_STS received: the token exchange request of a device.
type TokenRequest struct {
	// Header is the request header (the gateway's verified-identity headers included).
	Header http.Header
	// Body is the request body: the Azure AD or site token the device presents.
	Body []byte
}

// TokenIssuer issues the CCM token that CCM_STS hands back, with its lifetime. The
// default issues an opaque, JWT-shaped string; the demo plugs in the site-token package.
type TokenIssuer func(ctx context.Context, req TokenRequest) (token string, lifetime time.Duration, err error)

// Option changes a Server built by New.
type Option func(*Server)

// WithClock sets the clock the replies take their timestamps from (SentTime, cookie
// expiries, token lifetimes). Tests pass a fixed clock to hash replies.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithTokenIssuer sets the issuer CCM_STS uses.
func WithTokenIssuer(f TokenIssuer) Option { return func(s *Server) { s.issueToken = f } }

// Server is the simulated site: a management point under /mp/, a software update
// point under /sup/ and a distribution point under /dp/, on one HTTP listener.
type Server struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	issueToken TokenIssuer

	counters *counters
	certs    *siteCerts
	replies  *ccmReplies
	bits     *bitsSessions
	cab      []byte
	dp       *dpCatalog
	content  *contentTokens
	healthy  map[Role]*atomic.Bool
	handler  http.Handler
}

// New checks cfg and builds the server; it starts nothing (see Run).
func New(cfg Config, logger *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		now:      time.Now,
		counters: newCounters(),
		healthy:  map[Role]*atomic.Bool{},
	}
	s.issueToken = s.defaultToken
	for _, o := range opts {
		o(s)
	}
	for _, r := range allRoles {
		s.healthy[r] = &atomic.Bool{}
		s.healthy[r].Store(true)
	}
	var err error
	if s.certs, err = newSiteCerts(cfg); err != nil {
		return nil, fmt.Errorf("roles: site certificates: %w", err)
	}
	s.replies = newCCMReplies(s)
	s.bits = newBITSSessions(cfg.MaxBITSSessions, cfg.BITSSessionTTL)
	s.cab = selfUpdateCab(cfg.Seed, cfg.Sizes.SelfUpdateCab)
	s.dp = newDPCatalog(cfg.Seed, cfg.DP)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Handler is the server's HTTP handler. Served by another server it answers the same,
// but only Run counts wire bytes.
func (s *Server) Handler() http.Handler { return s.handler }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.counters.snapshot() }

// SetHealthy makes a role's health endpoint (/mp/healthz, /sup/healthz, or /healthz for
// RoleOther) answer 200 when up and 503 when not, for tests of role-health handling.
// The role keeps answering its other endpoints.
func (s *Server) SetHealthy(r Role, up bool) {
	if h, ok := s.healthy[r]; ok {
		h.Store(up)
	}
}

type connKey struct{}

// Run serves HTTP (HTTPS when TLS is configured) on ln until ctx is done, then shuts
// down gracefully: it stops accepting, lets requests in flight finish for
// ShutdownGrace, then cancels the rest and closes every connection. It closes ln.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	var l net.Listener = &countingListener{Listener: ln, c: s.counters}
	if s.cfg.TLS.Enabled() {
		tc, err := s.tlsConfig()
		if err != nil {
			_ = ln.Close()
			return err
		}
		l = tls.NewListener(l, tc)
	}
	// Handlers see baseCtx, cancelled only when the grace period is over, so delayed
	// and long requests may still finish during a graceful shutdown.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ConnContext:       connContext,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.log.Info("simulated site roles serving", "addr", ln.Addr().String(), "tls", s.cfg.TLS.Enabled())
	select {
	case err := <-errc:
		return fmt.Errorf("roles: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("simulated site roles: grace period over, closing connections", "err", err)
		cancelBase()
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("roles: serve: %w", err)
	}
	return nil
}

// connContext hands the counting connection under the (TLS) connection to handlers.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countingConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("roles: tls: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: one request at a time per connection is what the real roles
		// (IIS behind the connector) see, and what per-role byte attribution relies on.
		NextProtos: []string{"http/1.1"},
	}
	if s.cfg.TLS.ClientCAFile != "" {
		pem, err := os.ReadFile(s.cfg.TLS.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("roles: tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("roles: tls: no certificate in %s", s.cfg.TLS.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if s.cfg.TLS.RequireClientCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}
