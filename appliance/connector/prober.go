package connector

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/cmg-gateway/cmg/tunnel"
)

// prober checks each role's health on an interval and publishes changes over the
// control streams. Health orders the gateway's choice of connector; it never
// stops forwarding.
type prober struct {
	roles   []*role
	cfg     HealthConfig
	m       *metrics
	log     *slog.Logger
	publish func([]tunnel.RoleHealth)
	client  *http.Client
}

func newProber(roles map[string]*role, cfg HealthConfig, m *metrics, log *slog.Logger, publish func([]tunnel.RoleHealth)) *prober {
	p := &prober{cfg: cfg, m: m, log: log, publish: publish}
	for _, r := range roles {
		p.roles = append(p.roles, r)
	}
	sort.Slice(p.roles, func(i, j int) bool { return p.roles[i].cfg.ID < p.roles[j].cfg.ID })
	p.client = &http.Client{Timeout: cfg.Timeout}
	return p
}

func (p *prober) run(ctx context.Context) {
	p.probeAll(ctx, true)
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.probeAll(ctx, false)
		}
	}
}

func (p *prober) probeAll(ctx context.Context, first bool) {
	changed := first
	up := [len(roleKinds)]bool{true, true, true}
	for _, r := range p.roles {
		err := p.probe(ctx, r)
		ok := err == nil
		detail := ""
		if err != nil {
			detail = err.Error()
		}
		if r.setHealth(ok, detail) {
			changed = true
			p.log.Info("connector: role health changed", "role_id", r.cfg.ID, "kind", r.cfg.Kind, "healthy", ok, "detail", detail)
		}
		up[r.kindIdx] = up[r.kindIdx] && ok
	}
	for i, g := range p.m.backendUp {
		v := 0.0
		if up[i] {
			v = 1
		}
		g.Set(v)
	}
	if changed {
		p.publish(p.snapshot())
	}
}

func (p *prober) snapshot() []tunnel.RoleHealth {
	out := make([]tunnel.RoleHealth, 0, len(p.roles))
	for _, r := range p.roles {
		ok, d := r.health()
		out = append(out, tunnel.RoleHealth{RoleID: r.cfg.ID, Healthy: ok, Detail: d})
	}
	return out
}

// probe answers nil when the role is healthy: its health URL answers below 500,
// or (without one) its address accepts a TCP connection.
func (p *prober) probe(ctx context.Context, r *role) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if r.cfg.HealthURL == "" {
		host := r.base.Host
		if r.base.Port() == "" {
			port := "80"
			if r.base.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(r.base.Hostname(), port)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.HealthURL, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("health URL answered %s", resp.Status)
	}
	return nil
}
