package tunnel

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// ClientMetrics are the connector's tunnel metrics.
type ClientMetrics struct {
	reconnects *prometheus.CounterVec
}

// NewClientMetrics creates the connector's tunnel metrics on reg. The session and
// RTT gauges are read from c at scrape time; call Attach once the client exists.
func NewClientMetrics(reg prometheus.Registerer) (*ClientMetrics, error) {
	m := &ClientMetrics{
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmg_connector_tunnel_reconnects_total",
			Help: "Re-dials of a gateway instance after its tunnel failed or ended.",
		}, []string{"gateway_instance"}),
	}
	if err := reg.Register(m.reconnects); err != nil {
		return nil, err
	}
	return m, nil
}

// InitInstances creates the reconnect series of instances 0 to n-1 at zero, so
// they exist (and rates work) before the first reconnect.
func (m *ClientMetrics) InitInstances(n int) {
	for i := 0; i < n; i++ {
		m.reconnects.WithLabelValues(strconv.Itoa(i))
	}
}

// RegisterClientCollector exports cmg_connector_tunnel_sessions and
// cmg_connector_tunnel_rtt_seconds from c on reg.
func RegisterClientCollector(reg prometheus.Registerer, c *Client) error {
	return reg.Register(&clientCollector{
		c: c,
		sessions: prometheus.NewDesc("cmg_connector_tunnel_sessions",
			"Tunnel sessions to each gateway instance (1 up, 0 down), by the transport in use.",
			[]string{"gateway_instance", "transport"}, nil),
		rtt: prometheus.NewDesc("cmg_connector_tunnel_rtt_seconds",
			"Round-trip time of the last control-stream ping to the gateway instance.",
			[]string{"gateway_instance"}, nil),
	})
}

type clientCollector struct {
	c        *Client
	sessions *prometheus.Desc
	rtt      *prometheus.Desc
}

func (cc *clientCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.sessions
	ch <- cc.rtt
}

func (cc *clientCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range cc.c.Status() {
		inst := strconv.Itoa(st.Instance)
		if !st.Connected {
			ch <- prometheus.MustNewConstMetric(cc.sessions, prometheus.GaugeValue, 0, inst, "none")
			continue
		}
		ch <- prometheus.MustNewConstMetric(cc.sessions, prometheus.GaugeValue, 1, inst, st.Transport)
		ch <- prometheus.MustNewConstMetric(cc.rtt, prometheus.GaugeValue, st.RTT.Seconds(), inst)
	}
}
