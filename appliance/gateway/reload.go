package gateway

import (
	"github.com/cmg-gateway/cmg/configfile"
)

// Reload re-reads what can change without a restart: the server certificates and
// the allow-list. A bad file is logged and counted, and the old state stays.
func (g *Gateway) Reload(path string) {
	if err := g.cert.reload(); err != nil {
		g.log.Error("gateway: certificate reload failed; keeping the old one", "err", err)
		g.m.reloads.WithLabelValues("certificate", "failure").Inc()
	} else {
		g.m.reloads.WithLabelValues("certificate", "success").Inc()
	}
	cfg := DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		g.log.Error("gateway: config reload failed; keeping the old one", "err", err)
		g.m.reloads.WithLabelValues("config", "failure").Inc()
		return
	}
	g.allow.Store(newAllowList(cfg.Sites))
	g.content.reload(cfg)
	g.m.reloads.WithLabelValues("config", "success").Inc()
	g.log.Info("gateway: reloaded", "config", path)
}
