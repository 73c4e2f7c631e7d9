package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
)

// DrainConfig is how a stopping instance leaves the service (DESIGN section 5).
// On SIGTERM it turns /readyz to 503 at once and keeps serving for Delay, so
// that the load balancer's health check moves new devices elsewhere; every
// response from then on says Connection: close, so devices on kept-alive
// connections reconnect through the load balancer. After Delay it stops
// accepting device connections, lets the requests in flight finish for up to
// Grace, sends its drain notice to the connectors, closes the tunnels and exits.
// A process manager must allow Delay + Grace plus a few seconds before it kills.
type DrainConfig struct {
	// Delay should exceed the load balancer's time to notice a failing
	// /readyz (check interval x fall count). Default 5s.
	Delay time.Duration `yaml:"delay"`
	// Grace bounds the wait for requests in flight. Default 30s.
	Grace time.Duration `yaml:"grace"`
}

// DefaultDrainConfig is the production default.
func DefaultDrainConfig() DrainConfig {
	return DrainConfig{Delay: 5 * time.Second, Grace: 30 * time.Second}
}

func (c *DrainConfig) validate(ps *configfile.Problems) {
	if c.Delay < 0 {
		ps.Addf("drain.delay", "must not be negative")
	}
	if c.Grace <= 0 {
		ps.Addf("drain.grace", "must be positive")
	}
}

// drainCounter counts the device requests being served.
type drainCounter struct {
	n     atomic.Int64
	final atomic.Bool
}

// drainHandler is the device handler as the client listener serves it: it
// counts requests for drain and, once the instance drains, closes each
// connection after its response.
type drainHandler struct{ g *Gateway }

func (h drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	g.tx.active.n.Add(1)
	defer g.tx.active.n.Add(-1)
	if g.draining.Load() {
		w.Header().Set("Connection", "close")
		if g.tx.active.final.Load() {
			httperror.Write(w, "", httperror.New(httperror.Draining, "this instance is shutting down; retry"))
			return
		}
	}
	g.ServeHTTP(w, r)
}

// shutdown drains the instance (see DrainConfig). Run closes the tunnel
// listeners after it returns.
func (g *Gateway) shutdown(srv *http.Server) {
	d := g.cfg.Drain
	g.draining.Store(true)
	g.updateReady()
	g.log.Info("gateway: draining: /readyz answers 503; serving on while the load balancer notices",
		"delay", d.Delay.String(), "grace", d.Grace.String())
	if d.Delay > 0 {
		time.Sleep(d.Delay)
	}

	// Stop accepting devices. Idle kept-alive connections close now, busy ones
	// after their response.
	graceCtx, cancel := context.WithTimeout(context.Background(), d.Grace)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(graceCtx) }()
	g.log.Info("gateway: no longer accepting device connections; waiting for requests in flight",
		"in_flight", g.tx.active.n.Load())
	t := time.NewTicker(10 * time.Millisecond)
	for g.tx.active.n.Load() > 0 && graceCtx.Err() == nil {
		select {
		case <-graceCtx.Done():
		case <-t.C:
		}
	}
	t.Stop()
	if n := g.tx.active.n.Load(); n > 0 {
		g.log.Warn("gateway: the grace period ended with requests in flight; cutting them", "in_flight", n)
	}
	g.tx.active.final.Store(true)

	// Tell the connectors, then close the tunnels: the ones upgraded on the
	// client listener end with them, which lets Shutdown finish.
	g.tun.Drain()
	g.tun.Close()
	select {
	case <-shut:
	case <-graceCtx.Done():
		srv.Close()
		<-shut
	}
	g.content.close()
	g.log.Info("gateway: stopped")
}
