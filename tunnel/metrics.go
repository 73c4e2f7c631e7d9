package tunnel

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerMetrics are the gateway's tunnel event counters.
type ServerMetrics struct {
	connects     *prometheus.CounterVec
	refusedTotal *prometheus.CounterVec
}

// NewServerMetrics creates the tunnel counters on reg.
func NewServerMetrics(reg prometheus.Registerer) (*ServerMetrics, error) {
	m := &ServerMetrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmg_tunnel_connects_total",
			Help: "Tunnel connection attempts accepted or refused by this gateway instance, by connector, transport and result.",
		}, []string{"connector", "transport", "result"}),
		refusedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmg_tunnel_refused_total",
			Help: "Tunnel connections, routes and streams the gateway refused, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"tls", "identity", "hello", "not_allowed", "identity_mismatch", "control", "route", "connector_stream", "upgrade", "stalled_streams", "route_flood"} {
		m.refusedTotal.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.connects, m.refusedTotal} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ConnectorRef names a connector the allow-list knows.
type ConnectorRef struct{ Site, Name string }

// registryCollector exports the registry's state at scrape time, so the request
// path never touches these gauges.
type registryCollector struct {
	reg  *Registry
	opts CollectorOptions

	sessions *prometheus.Desc
	rtt      *prometheus.Desc
	streams  *prometheus.Desc
	expiry   *prometheus.Desc
}

// CollectorOptions add what the registry alone does not know.
type CollectorOptions struct {
	// Known lists the connectors the allow-list names; those without a session
	// are exported with 0 sessions (transport "none") so an alert sees them.
	Known func() []ConnectorRef
	// Certs gives the expiry of the gateway's own certificates by cert label
	// (the served certificate), exported beside the connectors'.
	Certs func() map[string]time.Time
}

// RegisterRegistryCollector exports cmg_tunnel_sessions, cmg_tunnel_rtt_seconds,
// cmg_tunnel_streams_open and cmg_cert_expiry_timestamp_seconds from r on reg.
func RegisterRegistryCollector(reg prometheus.Registerer, r *Registry, opts CollectorOptions) error {
	return reg.Register(&registryCollector{
		reg:  r,
		opts: opts,
		sessions: prometheus.NewDesc("cmg_tunnel_sessions",
			"Live tunnel sessions on this gateway instance, by connector, site and transport (0 for an allowed connector that is not connected).",
			[]string{"connector", "site", "transport"}, nil),
		rtt: prometheus.NewDesc("cmg_tunnel_rtt_seconds",
			"Round-trip time of the last control-stream ping to the connector.", []string{"connector"}, nil),
		streams: prometheus.NewDesc("cmg_tunnel_streams_open",
			"Request streams open on the connector's tunnel.", []string{"connector"}, nil),
		expiry: prometheus.NewDesc("cmg_cert_expiry_timestamp_seconds",
			"Expiry time (Unix seconds) of certificates: the served certificate and each connected connector's.", []string{"cert"}, nil),
	})
}

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.rtt
	ch <- c.streams
	ch <- c.expiry
}

func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	live := map[ConnectorRef]bool{}
	for _, s := range c.reg.Sessions() {
		live[ConnectorRef{s.Site, s.Name}] = true
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, 1, s.Name, s.Site, s.Transport)
		ch <- prometheus.MustNewConstMetric(c.rtt, prometheus.GaugeValue, s.RTT().Seconds(), s.Name)
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(s.StreamsOpen()), s.Name)
		if !s.CertNotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(s.CertNotAfter.Unix()), "connector/"+s.Name)
		}
	}
	if c.opts.Certs != nil {
		for name, t := range c.opts.Certs() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(t.Unix()), name)
		}
	}
	if c.opts.Known == nil {
		return
	}
	for _, k := range c.opts.Known() {
		if !live[k] {
			ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, 0, k.Name, k.Site, "none")
		}
	}
}
