package gateway

import (
	"context"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

// Reload re-reads what can change without a restart: the server certificates,
// the allow-list, the policy file, and the CRL files and JWKS that changed. A
// bad file is logged and counted, and the old state stays. Connections and
// requests in flight are not touched: new handshakes get the new certificate,
// new requests the new allow-list and policy.
func (g *Gateway) Reload(path string) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	for _, s := range g.fileCertStores() {
		if err := s.reload(); err != nil {
			g.log.Error("gateway: certificate reload failed; keeping the old one", "err", err)
			g.m.reloads.WithLabelValues("certificate", "failure").Inc()
		} else {
			g.m.reloads.WithLabelValues("certificate", "success").Inc()
		}
	}
	cfg := DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		g.log.Error("gateway: config reload failed; keeping the old one", "err", err)
		g.m.reloads.WithLabelValues("config", "failure").Inc()
	} else {
		g.allow.Store(newAllowList(cfg.Sites))
		g.reloadObservability(cfg)
		g.content.reload(cfg)
		g.m.reloads.WithLabelValues("config", "success").Inc()
		g.log.Info("gateway: reloaded", "config", path)
		g.policyFile = cfg.Policy.File
	}
	_ = g.ReloadPolicy(g.policyFile)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.auth.Refresh(ctx); err != nil {
		g.log.Warn("gateway: CRL or JWKS refresh on reload failed; keeping what is held", "err", err)
	}
}
