// Package gateway is the public side of cmg: it terminates device TLS, authenticates
// the device, routes the request by its role prefix to a connector of the role's
// site and forwards it as one stream over that connector's tunnel, streaming
// bodies both ways (DESIGN sections 4 to 8).
package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/policies"
	"github.com/cmg-gateway/cmg/tunnel"
)

// Options are the gateway's injected dependencies.
type Options struct {
	Logger *slog.Logger
	// Registry receives the gateway's metrics; it is served on /metrics.
	Registry *prometheus.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CostNow is the clock of the cost model's windows; nil means Now.
	CostNow func() time.Time
}

// Gateway is one gateway instance.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	prom  *prometheus.Registry
	m     *requestMetrics
	now   func() time.Time
	auth  *auth.Authenticator
	allow atomic.Pointer[allowList]
	tun   *tunnel.Server
	reg   *tunnel.Registry
	cert  certSource
	adm   *admin.Server
	// tunnelCert is what connectors see: the client certificate, or its own.
	tunnelCert certSource
	acme       *acmeCerts // nil unless the certificate comes from ACME
	pol        *policies.Engine
	pm         *policyMetrics
	// httpEgress feeds the egress budget with each exchange's HTTP-level bytes
	// (see CountEgress).
	httpEgress bool
	reloadMu   sync.Mutex // serializes Reload; guards policyFile
	policyFile string     // the policy file in force
	notif      *notifier

	obs       observability
	content   *contentServer
	draining  atomic.Bool
	hardening // listener limits and the in-flight limit (limits.go)

	writers sync.Pool // *bufio.Writer towards connectors
	readers sync.Pool // *bufio.Reader from connectors
	bufs    sync.Pool // *[]byte body copy buffers

	clientLn net.Listener
	tunnelLn net.Listener
	adminLn  net.Listener
	acmeLn   net.Listener // the ACME HTTP-01 listener, when in use
	tx       transports
}

// copyBufferSize is the body copy buffer: large enough that a download moves in
// few writes, small enough to keep per-request memory low.
const copyBufferSize = 32 << 10

// New checks the configuration, loads certificates and builds the gateway. It
// starts nothing; Run does.
func New(cfg Config, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Gateway{cfg: cfg, log: opts.Logger, prom: opts.Registry, now: opts.Now}
	g.writers.New = func() any { return bufio.NewWriterSize(nil, 4096) }
	g.readers.New = func() any { return bufio.NewReaderSize(nil, 4096) }
	g.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	var err error
	if cfg.Client.ACME.Enabled() {
		if g.acme, err = newACMECerts(cfg.Client.ACME, cfg.Client.Listen, opts.Logger); err != nil {
			return nil, err
		}
		g.cert = g.acme
	} else if g.cert, err = newCertStore(cfg.Client.CertFile, cfg.Client.KeyFile); err != nil {
		return nil, err
	}
	if g.pol, err = policies.NewEngine(cfg.Policy, opts.Now); err != nil {
		return nil, fmt.Errorf("gateway: policy: %w", err)
	}
	g.httpEgress = true
	g.policyFile = cfg.Policy.File
	authOpts := &auth.Options{Now: opts.Now, Logger: opts.Logger, Metrics: auth.NewMetrics(opts.Registry)}
	if g.auth, err = auth.New(cfg.Auth, authOpts); err != nil {
		return nil, fmt.Errorf("gateway: auth: %w", err)
	}
	if g.m, err = newRequestMetrics(opts.Registry); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	if err := g.newLimits(); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	if g.pm, err = newPolicyMetrics(opts.Registry, g.pol, g.m.reloads); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	if err := g.newObservability(opts); err != nil {
		return nil, err
	}
	g.allow.Store(newAllowList(cfg.Sites))
	if err := g.newTunnelServer(); err != nil {
		return nil, err
	}
	if g.notif, err = newNotifier(g); err != nil {
		return nil, fmt.Errorf("gateway: notifications: %w", err)
	}
	g.adm, err = admin.New(cfg.Admin, opts.Registry, g.Ready, func() any { return g.Status() }, g.log)
	if err != nil {
		return nil, err
	}
	if g.content, err = newContentServer(g); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Gateway) newTunnelServer() error {
	cas, err := auth.LoadPool(g.cfg.Tunnel.ConnectorCAs)
	if err != nil {
		return fmt.Errorf("gateway: connector CAs: %w", err)
	}
	g.tunnelCert = g.cert
	if g.cfg.Tunnel.CertFile != "" {
		if g.tunnelCert, err = newCertStore(g.cfg.Tunnel.CertFile, g.cfg.Tunnel.KeyFile); err != nil {
			return err
		}
	}
	tlsCfg := &tls.Config{
		GetCertificate: g.tunnelCert.get,
		ClientCAs:      cas,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"cmg-tunnel/1"},
	}
	sm, err := tunnel.NewServerMetrics(g.prom)
	if err != nil {
		return err
	}
	g.tun, err = tunnel.NewServer(tunnel.ServerConfig{
		Instance:     g.cfg.Instance,
		Instances:    g.cfg.Instances,
		TLS:          tlsCfg,
		Allow:        allowProxy{g},
		PingInterval: g.cfg.Tunnel.PingInterval,
		Logger:       g.log,
		Metrics:      sm,
		Now:          g.now,
	})
	if err != nil {
		return err
	}
	g.reg = g.tun.Registry()
	g.reg.OnChange(g.updateReady)
	err = tunnel.RegisterRegistryCollector(g.prom, g.reg, tunnel.CollectorOptions{
		Known: func() []tunnel.ConnectorRef { return g.allow.Load().known() },
		Certs: func() map[string]time.Time {
			return map[string]time.Time{"served": g.cert.notAfter()}
		},
	})
	if err != nil {
		return err
	}
	return g.registerRouteCollector()
}

// allowProxy reads the current allow-list, which a reload may replace.
type allowProxy struct{ g *Gateway }

func (a allowProxy) AllowConnector(site, name string) error {
	return a.g.allow.Load().AllowConnector(site, name)
}

func (a allowProxy) AllowRoute(site, name string, r tunnel.Route) error {
	return a.g.allow.Load().AllowRoute(site, name, r)
}

// Listen opens the client, tunnel and admin listeners, so that a port already
// in use is an error before anything runs.
func (g *Gateway) Listen() error {
	var err error
	if g.clientLn, err = net.Listen("tcp", g.cfg.Client.Listen); err != nil {
		return fmt.Errorf("gateway: client listener: %w", err)
	}
	g.clientLn = g.obs.wire.listener(g.clientLn, wireClient)
	if g.tunnelLn, err = net.Listen("tcp", g.cfg.TunnelListen()); err != nil {
		g.clientLn.Close()
		return fmt.Errorf("gateway: tunnel listener: %w", err)
	}
	g.tunnelLn = g.obs.wire.listener(g.tunnelLn, wireTunnel)
	if err = g.listenTransports(); err != nil {
		g.clientLn.Close()
		g.tunnelLn.Close()
		return err
	}
	if g.adminLn, err = g.adm.Listen(); err != nil {
		g.clientLn.Close()
		g.tunnelLn.Close()
		g.closeTransports()
		return fmt.Errorf("gateway: %w", err)
	}
	if g.acme != nil && g.cfg.Client.ACME.Challenge == ChallengeHTTP01 {
		if g.acmeLn, err = net.Listen("tcp", g.cfg.Client.ACME.HTTPListen); err != nil {
			g.clientLn.Close()
			g.tunnelLn.Close()
			g.adminLn.Close()
			return fmt.Errorf("gateway: ACME HTTP-01 listener: %w", err)
		}
	}
	return nil
}

// ClientAddr, TunnelAddr and AdminAddr are the listeners' addresses after Listen.
func (g *Gateway) ClientAddr() net.Addr { return g.clientLn.Addr() }

// TunnelAddr is the TCP-TLS tunnel listener's address.
func (g *Gateway) TunnelAddr() net.Addr { return g.tunnelLn.Addr() }

// AdminAddr is the admin listener's address.
func (g *Gateway) AdminAddr() net.Addr { return g.adminLn.Addr() }

// Run listens (unless Listen was called) and serves until ctx is done, then
// drains and stops.
func (g *Gateway) Run(ctx context.Context) error {
	if g.clientLn == nil {
		if err := g.Listen(); err != nil {
			return err
		}
	}
	g.updateReady()
	stopObs := g.runObservability(ctx)
	defer stopObs()
	srv := g.clientServer()
	errc := make(chan error, 4)
	tctx, cancelTunnel := context.WithCancel(context.Background())
	defer cancelTunnel()
	go func() { errc <- g.tun.Serve(tctx, g.tunnelLn, tunnel.TransportTCPTLS) }()
	g.serveTransports(tctx, errc)
	actx, cancelAdmin := context.WithCancel(context.Background())
	defer cancelAdmin()
	go func() { errc <- g.adm.Serve(actx, g.adminLn) }()
	nctx, stopNotify := context.WithCancel(ctx) // channels close as soon as the instance stops
	notifDone := make(chan struct{})
	go func() { _ = g.notif.Run(nctx); close(notifDone) }()
	defer func() { stopNotify(); <-notifDone }()
	go func() {
		// CRL and JWKS refresh.
		if err := g.auth.Run(actx); err != nil {
			errc <- err
		}
	}()
	go func() { _ = g.pol.Run(actx) }()
	go g.watchCerts(actx, g.cfg.Client.CertCheckInterval)
	if g.acme != nil {
		stopACME := g.startACME(actx, errc)
		defer stopACME()
	}
	go func() {
		err := srv.Serve(g.deviceListener(srv))
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	g.log.Info("gateway: serving", "instance", g.cfg.Instance, "client", g.clientLn.Addr().String(),
		"tunnel", g.tunnelLn.Addr().String(), "admin", g.adminLn.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	g.shutdown(srv)
	cancelTunnel()
	cancelAdmin()
	return runErr
}

// clientServer is the device-facing HTTPS server.
func (g *Gateway) clientServer() *http.Server {
	minV, _ := tlsVersion(g.cfg.Client.MinTLSVersion)
	protos := []string{"http/1.1"}
	if g.acme != nil && g.cfg.Client.ACME.Challenge == ChallengeTLSALPN01 {
		protos = append(protos, alpnProtocol)
	}
	tlsCfg := &tls.Config{
		GetCertificate: g.cert.get,
		MinVersion:     minV,
		NextProtos:     protos,
		VerifyConnection: func(tls.ConnectionState) error {
			g.m.handshakes.WithLabelValues("success").Inc()
			return nil
		},
	}
	if v := g.auth.Certificates(); v != nil {
		// Verified by the handler, so that a bad certificate gets a 403 with a
		// reason instead of a TLS alert, and chains may use configured
		// intermediates.
		tlsCfg.ClientAuth = tls.RequestClientCert
		tlsCfg.ClientCAs = v.Roots()
	}
	srv := &http.Server{
		Handler:           g,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: g.cfg.Client.ReadHeaderTimeout,
		IdleTimeout:       g.cfg.Client.IdleTimeout,
		MaxHeaderBytes:    int(g.cfg.Client.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnContext:       func(ctx context.Context, _ net.Conn) context.Context { return auth.WithConnCache(ctx) },
	}
	g.shareClientListener(srv)
	g.harden(srv)
	return srv
}

// Ready reports whether the instance should get devices: a connector is in and
// it is not draining.
func (g *Gateway) Ready() bool {
	return !g.draining.Load() && g.reg.Len() > 0
}

func (g *Gateway) updateReady() {
	v := 0.0
	if g.Ready() {
		v = 1
	}
	g.m.ready.Set(v)
}

// Registry is the tunnel registry (for tests and the status API).
func (g *Gateway) Registry() *tunnel.Registry { return g.reg }

// deviceHash is the keyed hash of a device identity that logs carry.
func (g *Gateway) deviceHash(device string) string {
	return g.obs.hashDevice(device)
}

// rand is the request id source; ids need to be unique, not secret.
func (g *Gateway) rand() uint64 { return mrand.Uint64() }
