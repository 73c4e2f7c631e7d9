// Package admin is the operations listener of the gateway and the connector:
// /metrics, /healthz, /readyz, /api/v1/status and /debug/pprof. It is separate
// from device traffic and binds to loopback by default; pprof answers loopback
// clients only unless configured otherwise.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/metrics"
)

// Config is the admin listener section of both processes' configuration.
type Config struct {
	// Listen is the admin address. Default 127.0.0.1:9100 (gateway).
	Listen string `yaml:"listen"`
	// Pprof enables /debug/pprof. Default true.
	Pprof bool `yaml:"pprof"`
	// RemotePprof lets non-loopback clients use /debug/pprof. Default false.
	RemotePprof bool `yaml:"remote_pprof"`
}

// DefaultConfig is the gateway's default admin listener.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:9100", Pprof: true} }

// Validate reports every problem of the section.
func (c Config) Validate() error {
	var ps configfile.Problems
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		ps.Addf("listen", "%v", err)
	}
	return ps.Err()
}

// Server is an admin listener.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	log    *slog.Logger
	ready  func() bool
	status func() any
}

// New builds the admin handler. ready decides /readyz; status is encoded as the
// JSON of /api/v1/status.
func New(cfg Config, g prometheus.Gatherer, ready func() bool, status func() any, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: log, ready: ready, status: status}
	s.mux.Handle("GET /metrics", metrics.Handler(g))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /api/v1/status", s.statusJSON)
	if cfg.Pprof {
		s.mux.Handle("/debug/pprof/", s.debugOnly(http.HandlerFunc(pprof.Index)))
		s.mux.Handle("/debug/pprof/profile", s.debugOnly(http.HandlerFunc(pprof.Profile)))
		s.mux.Handle("/debug/pprof/symbol", s.debugOnly(http.HandlerFunc(pprof.Symbol)))
		s.mux.Handle("/debug/pprof/trace", s.debugOnly(http.HandlerFunc(pprof.Trace)))
		// /debug/pprof/cmdline is left out: it would show the command line.
	}
	return s, nil
}

// Handle adds a route (the connector's notify API, for one).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler is the admin handler.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	if s.ready != nil && !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) statusJSON(w http.ResponseWriter, _ *http.Request) {
	var v any = struct{}{}
	if s.status != nil {
		v = s.status()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) debugOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.RemotePprof && !isLoopback(r.RemoteAddr) {
			http.Error(w, "pprof is available to loopback clients only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func isLoopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Listen opens the admin listener.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Serve serves ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
