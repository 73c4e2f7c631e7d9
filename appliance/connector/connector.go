// Package connector is the on-prem side of cmg: it dials out to every gateway
// instance, publishes its routes, serves the request streams it is given by
// rewriting the public prefix to the role's internal URL and proxying to the role,
// and reports role health over the control stream (DESIGN sections 1, 5 and 7).
package connector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/notify"
	"github.com/cmg-gateway/cmg/tracing"
	"github.com/cmg-gateway/cmg/tunnel"
	"github.com/cmg-gateway/cmg/version"
)

// Options are the connector's injected dependencies.
type Options struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Now      func() time.Time
}

// Connector is one connector process.
type Connector struct {
	certs  *certHolder
	cfg    Config
	log    *slog.Logger
	prom   *prometheus.Registry
	now    func() time.Time
	client *tunnel.Client
	roles  map[string]*role // by RoleID
	m      *metrics
	adm    *admin.Server
	tracer *tracing.Tracer
	tr     trace.Tracer // nil when tracing is off
	prober *prober
	ladder []tunnel.Transport
	hello  tunnel.Hello
	gwTLS  *tls.Config
	notif  *notifier

	adminLn net.Listener
}

// New checks the configuration, loads certificates and builds the connector.
func New(cfg Config, opts Options) (*Connector, error) {
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
	c := &Connector{cfg: cfg, log: opts.Logger, prom: opts.Registry, now: opts.Now, roles: map[string]*role{}}
	var err error
	if c.certs, err = newCertHolder(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
		return nil, err
	}
	if c.m, err = newMetrics(opts.Registry); err != nil {
		return nil, err
	}
	var routes []tunnel.Route
	bufs := newBufferPool()
	for _, rc := range cfg.Roles {
		r, err := newRole(rc, c.certs, c.m, bufs, c.log)
		if err != nil {
			return nil, err
		}
		c.roles[rc.ID] = r
		routes = append(routes, tunnel.Route{RoleID: rc.ID, Kind: rc.Kind, Auth: rc.Auth})
	}
	if err := c.newTracing(); err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	gwTLS := &tls.Config{
		GetClientCertificate: c.certs.clientCert,
		ServerName:           cfg.Gateway.ServerName,
		MinVersion:           tls.VersionTLS12,
		NextProtos:           []string{"cmg-tunnel/1"},
	}
	if len(cfg.Gateway.CAFiles) > 0 {
		if gwTLS.RootCAs, err = auth.LoadPool(cfg.Gateway.CAFiles); err != nil {
			return nil, fmt.Errorf("connector: gateway CAs: %w", err)
		}
	}
	if gwTLS.ServerName == "" {
		gwTLS.ServerName = cfg.Gateway.Host
	}
	c.gwTLS = gwTLS
	c.hello = tunnel.Hello{Name: cfg.Name, Site: cfg.Site, Version: version.Version, Routes: routes}
	if c.ladder = cfg.Gateway.Ladder(gwTLS, nil); len(c.ladder) == 0 {
		return nil, errors.New("connector: gateway.transports: no usable transport (https_proxy needs proxy.url or HTTPS_PROXY)")
	}
	if c.notif, err = newNotifier(cfg, c.log, c.now); err != nil {
		return nil, err
	}
	cm, err := tunnel.NewClientMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	cm.InitInstances(cfg.Gateway.Instances)
	c.client, err = tunnel.NewClient(tunnel.ClientConfig{
		Name:           cfg.Name,
		Site:           cfg.Site,
		Version:        version.Version,
		Routes:         routes,
		Host:           cfg.Gateway.Host,
		Instances:      cfg.Gateway.Instances,
		TCPPortBase:    cfg.Gateway.TCPPortBase,
		TLS:            gwTLS,
		Transports:     c.ladder,
		RetryPreferred: cfg.Gateway.RetryPreferred,
		Logger:         c.log,
		Metrics:        cm,
		Now:            c.now,
	}, &streamHandler{c: c, next: c.notif.streams(http.HandlerFunc(c.serveStream))})
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	c.notif.attach(c.client)
	if err := tunnel.RegisterClientCollector(opts.Registry, c.client); err != nil {
		return nil, err
	}
	c.prober = newProber(c.roles, cfg.Health, c.m, c.log, c.client.SetHealth)
	c.adm, err = admin.New(cfg.Admin, opts.Registry, func() bool { return c.client.Connected() > 0 },
		func() any { return c.Status() }, c.log)
	if err != nil {
		return nil, err
	}
	c.adm.Handle("POST /api/v1/notify", c.notif)
	return c, nil
}

// Listen opens the admin listener.
func (c *Connector) Listen() error {
	var err error
	c.adminLn, err = c.adm.Listen()
	return err
}

// AdminAddr is the admin listener's address after Listen.
func (c *Connector) AdminAddr() net.Addr { return c.adminLn.Addr() }

// Admin is the admin server (to add routes such as the notify API).
func (c *Connector) Admin() *admin.Server { return c.adm }

// Tunnel is the tunnel client.
func (c *Connector) Tunnel() *tunnel.Client { return c.client }

// Run serves until ctx is done, then drains: it tells every gateway instance, lets
// its streams finish (up to the drain timeout) and closes.
func (c *Connector) Run(ctx context.Context) error {
	if c.adminLn == nil {
		if err := c.Listen(); err != nil {
			return err
		}
	}
	stopObs := c.runObservability(ctx)
	defer stopObs()
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- c.adm.Serve(runCtx, c.adminLn) }()
	go func() { defer wg.Done(); c.prober.run(runCtx) }()
	go func() { defer wg.Done(); _ = c.client.Run(runCtx) }()
	c.log.Info("connector: running", "name", c.cfg.Name, "site", c.cfg.Site, "gateway", c.cfg.Gateway.Host,
		"instances", c.cfg.Gateway.Instances, "admin", c.adminLn.Addr().String())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	dctx, cancel := context.WithTimeout(context.Background(), c.cfg.DrainTimeout)
	if derr := c.client.Drain(dctx); derr != nil && !errors.Is(derr, context.Canceled) {
		c.log.Warn("connector: drain ended before every stream finished", "err", derr)
	}
	cancel()
	cancelRun()
	wg.Wait()
	c.log.Info("connector: stopped")
	return err
}

// Status is the JSON of the connector's /api/v1/status.
type Status struct {
	Name    string `json:"name"`
	Site    string `json:"site"`
	Gateway string `json:"gateway"`
	// Transports is the fallback ladder, best first.
	Transports []string                `json:"transports"`
	Instances  []tunnel.InstanceStatus `json:"instances"`
	Roles      []RoleStatus            `json:"roles"`
	// NotifyBuffer is the size of the buffer of recent notifications.
	NotifyBuffer notify.Stats `json:"notify_buffer"`
}

// RoleStatus is one published role.
type RoleStatus struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// Status reports the tunnels and roles.
func (c *Connector) Status() Status {
	st := Status{Name: c.cfg.Name, Site: c.cfg.Site, Gateway: c.cfg.Gateway.Host, Instances: c.client.Status()}
	for _, t := range c.ladder {
		st.Transports = append(st.Transports, t.Name())
	}
	st.NotifyBuffer = c.notif.bufferStats()
	for _, rc := range c.cfg.Roles {
		h, d := c.roles[rc.ID].health()
		st.Roles = append(st.Roles, RoleStatus{ID: rc.ID, Kind: string(rc.Kind), Healthy: h, Detail: d})
	}
	return st
}
