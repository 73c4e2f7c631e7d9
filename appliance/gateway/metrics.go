package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/metrics"
)

// requestMetrics are the gateway's per-request metrics (DESIGN section 11). Series
// that every request touches are resolved once here, indexed by role kind, so the
// request path does no label hashing for them.
type requestMetrics struct {
	requests   *prometheus.CounterVec
	duration   [numRoleLabels]prometheus.Observer
	inflight   [numRoleLabels]prometheus.Gauge
	egress     [2][numRoleLabels]prometheus.Counter // [peer][role]
	ingress    [2][numRoleLabels]prometheus.Counter
	errors     map[httperror.Reason]prometheus.Counter
	conns      prometheus.Gauge
	handshakes *prometheus.CounterVec
	ready      prometheus.Gauge
	reloads    *prometheus.CounterVec
}

// Peers of the byte counters.
const (
	peerClient    = 0
	peerConnector = 1
)

var peerLabels = [2]string{"client", "connector"}

func newRequestMetrics(reg prometheus.Registerer) (*requestMetrics, error) {
	m := &requestMetrics{errors: map[httperror.Reason]prometheus.Counter{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_requests_total",
		Help: "Device requests answered, by role kind, method and status code.",
	}, []string{"role", "method", "code"})
	duration := prometheus.NewHistogramVec(metrics.HistogramOpts("cmg_gateway_request_duration_seconds",
		"Time from a device request's header to the end of its response, by role kind."), []string{"role"})
	inflight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cmg_gateway_requests_in_flight",
		Help: "Device requests being served, by role kind.",
	}, []string{"role"})
	egress := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_egress_bytes_total",
		Help: "HTTP-level bytes the gateway sent (headers and bodies), by peer (client, connector) and role kind.",
	}, []string{"peer", "role"})
	ingress := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_ingress_bytes_total",
		Help: "HTTP-level bytes the gateway received (headers and bodies), by peer (client, connector) and role kind.",
	}, []string{"peer", "role"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_errors_total",
		Help: "Errors answered to devices (or, for ClientClosed, devices that went away), by reason.",
	}, []string{"reason"})
	m.conns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cmg_gateway_client_connections",
		Help: "Open device connections on the client listener.",
	})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_tls_handshakes_total",
		Help: "TLS handshakes on the client listener, by result.",
	}, []string{"result"})
	m.ready = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cmg_gateway_ready",
		Help: "1 when /readyz answers 200 (a connector is in and the instance is not draining).",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_config_reloads_total",
		Help: "Reloads on SIGHUP or file change, by what was reloaded and the result.",
	}, []string{"what", "result"})
	for i, role := range roleKindLabels {
		m.duration[i] = duration.WithLabelValues(role)
		m.inflight[i] = inflight.WithLabelValues(role)
		for p, peer := range peerLabels {
			m.egress[p][i] = egress.WithLabelValues(peer, role)
			m.ingress[p][i] = ingress.WithLabelValues(peer, role)
		}
	}
	for _, r := range httperror.Reasons {
		m.errors[r] = errs.WithLabelValues(string(r))
	}
	for _, r := range []string{"success", "failure"} {
		m.handshakes.WithLabelValues(r)
		m.reloads.WithLabelValues("certificate", r)
		m.reloads.WithLabelValues("config", r)
	}
	for _, c := range []prometheus.Collector{m.requests, duration, inflight, egress, ingress, errs, m.conns, m.handshakes, m.ready, m.reloads} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// methodLabel bounds the method label to the methods of DESIGN section 7.
func methodLabel(m string) string {
	if methodAllowed(m) {
		return m
	}
	return "other"
}

// codeLabels caches status code strings for the code label.
var codeLabels = func() map[int]string {
	out := map[int]string{}
	for c := 100; c < 600; c++ {
		out[c] = strconv.Itoa(c)
	}
	return out
}()

func codeLabel(c int) string {
	if s, ok := codeLabels[c]; ok {
		return s
	}
	return "other"
}
