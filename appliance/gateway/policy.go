package gateway

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/policies"
)

// policyMetrics are the policy engine's metrics: decisions per rule and
// action, and the egress budget (DESIGN sections 10 and 11).
type policyMetrics struct {
	decisions *prometheus.CounterVec
	// byRule resolves a decision's counter without label hashing; it is
	// replaced when a reload brings new rule names.
	byRule atomic.Pointer[map[string]*[2]prometheus.Counter]
	mu     sync.Mutex // serializes byRule rebuilds
}

func newPolicyMetrics(reg prometheus.Registerer, eng *policies.Engine, reloads *prometheus.CounterVec) (*policyMetrics, error) {
	// The reload outcomes this part can count, so rates work from the start.
	for _, what := range []string{"policy", "certificate"} {
		for _, result := range []string{"success", "failure"} {
			reloads.WithLabelValues(what, result)
		}
	}
	m := &policyMetrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_policy_decisions_total",
		Help: "Policy decisions on authenticated, routed device requests, by deciding rule (\"default\" for the default action) and action.",
	}, []string{"rule", "action"})}
	m.track(eng.Policy())
	budget := eng.Budget()
	used := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cmg_cost_egress_budget_used_ratio",
		Help: "Fraction of this instance's egress budget used over the budget window (0 when no budget is set; above 1 when overspent).",
	}, budget.UsedRatio)
	thresholds := &thresholdCollector{budget: budget, desc: prometheus.NewDesc("cmg_cost_egress_budget_threshold_ratio",
		"The egress budget's warning and critical fractions (absent when no budget is set).", []string{"level"}, nil)}
	for _, c := range []prometheus.Collector{m.decisions, used, thresholds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// track creates the series of every rule of p (each rule can only take its
// own action; the default only the default action) and makes them the ones
// the request path counts on. Series of rules a reload removed stay.
func (m *policyMetrics) track(p *policies.Policy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[string]*[2]prometheus.Counter{}
	if old := m.byRule.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	for _, name := range p.RuleNames() {
		cs := next[name]
		if cs == nil {
			cs = &[2]prometheus.Counter{}
			next[name] = cs
		}
		a, _ := p.RuleAction(name)
		if cs[a] == nil {
			cs[a] = m.decisions.WithLabelValues(name, a.String())
		}
	}
	m.byRule.Store(&next)
}

func (m *policyMetrics) count(d *policies.Decision) {
	if cs := (*m.byRule.Load())[d.Rule]; cs != nil && cs[d.Action] != nil {
		cs[d.Action].Inc()
		return
	}
	m.decisions.WithLabelValues(d.Rule, d.Action.String()).Inc()
}

// thresholdCollector exports the budget's thresholds as they are in force.
type thresholdCollector struct {
	budget *policies.EgressBudget
	desc   *prometheus.Desc
}

func (c *thresholdCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *thresholdCollector) Collect(ch chan<- prometheus.Metric) {
	cfg := c.budget.Config()
	if cfg.Bytes <= 0 {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, cfg.Warning, "warning")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, cfg.Critical, "critical")
}

// admit applies the policy to an authenticated, routed request (DESIGN
// section 7: authenticate, route, then policy). It answers the device itself
// and returns false when the request may not go on; otherwise the caller
// must call x.permit.Release when the request ends.
func (g *Gateway) admit(x *exchange) bool {
	r, id := x.r, x.ident
	req := &x.preq
	req.AuthMethod = string(id.Method)
	req.CertSubject = id.Subject
	req.CertIssuer = id.Issuer
	req.Claims = id.Claims
	req.Source = remoteAddr(r.RemoteAddr)
	req.RoleKind = ""
	if x.role != nil {
		req.RoleKind = string(x.role.Kind)
	}
	req.Path = r.URL.Path
	req.Device = id.Device
	d, permit, err := g.pol.Admit(req)
	g.pm.count(&d)
	if err != nil {
		g.fail(x, httperror.As(err, httperror.PolicyDenied))
		return false
	}
	x.permit = permit
	if err := d.CheckContentLength(r.ContentLength); err != nil {
		permit.Release()
		x.permit = policies.Permit{}
		g.fail(x, httperror.As(err, httperror.RequestTooLarge))
		return false
	}
	if d.BodyBytes > 0 && r.ContentLength < 0 {
		// A declared length was checked above (net/http never reads past it);
		// a body without one is cut where it grows past the limit.
		r.Body = d.LimitBody(r.Body)
	}
	return true
}

// remoteAddr is the device's address of an http.Request.RemoteAddr (which
// carries the PROXY protocol address behind a load balancer).
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// CountEgress adds n bytes that left the gateway (to a device or to a
// connector) to the egress budget. Today the request path feeds it with each
// exchange's HTTP-level bytes on both legs (see record); the wire counters of
// DESIGN section 11 (socket bytes, TLS included) can take over by calling it
// from the listeners' connection wrappers and setting httpEgress to false.
func (g *Gateway) CountEgress(n int64) { g.pol.Budget().Add(n) }

// ReloadPolicy reads the policy file again (path "" for no policy). A bad
// file is logged and counted, and the policy in force stays.
func (g *Gateway) ReloadPolicy(path string) error {
	if err := g.pol.Reload(path); err != nil {
		g.log.Error("gateway: policy reload failed; keeping the policy in force", "policy", path, "err", err)
		g.m.reloads.WithLabelValues("policy", "failure").Inc()
		return err
	}
	g.pm.track(g.pol.Policy())
	g.m.reloads.WithLabelValues("policy", "success").Inc()
	g.log.Info("gateway: policy reloaded", "policy", path, "rules", len(g.pol.Policy().RuleNames())-1)
	return nil
}
