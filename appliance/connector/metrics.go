package connector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	cmgmetrics "github.com/cmg-gateway/cmg/metrics"
	"github.com/cmg-gateway/cmg/tunnel"
)

// metrics are the connector's role metrics (DESIGN section 11).
type metrics struct {
	requests        *prometheus.CounterVec
	backendDuration [len(roleKinds)]prometheus.Observer
	backendUp       [len(roleKinds)]prometheus.Gauge
}

var roleKinds = [3]tunnel.RoleKind{tunnel.ManagementPoint, tunnel.SoftwareUpdatePoint, tunnel.DistributionPoint}

func kindIndex(k tunnel.RoleKind) int {
	for i, x := range roleKinds {
		if x == k {
			return i
		}
	}
	return 0
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_connector_requests_total",
		Help: "Request streams the connector served, by role kind and status code.",
	}, []string{"role", "code"})
	dur := prometheus.NewHistogramVec(cmgmetrics.HistogramOpts("cmg_connector_backend_duration_seconds",
		"Time from sending a request to the role to its response header, by role kind."), []string{"role"})
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cmg_connector_backend_up",
		Help: "1 when every role of the kind answered its last health probe, else 0.",
	}, []string{"role"})
	for i, k := range roleKinds {
		m.backendDuration[i] = dur.WithLabelValues(string(k))
		m.backendUp[i] = up.WithLabelValues(string(k))
	}
	for _, c := range []prometheus.Collector{m.requests, dur, up} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func codeLabel(c int) string {
	if c < 100 || c > 599 {
		return "other"
	}
	return strconv.Itoa(c)
}
