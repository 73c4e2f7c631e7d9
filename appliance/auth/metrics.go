package auth

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// methodNone is the method label when a device presented no credential (or a
// token to a gateway that takes none).
const methodNone Method = "none"

// The result label values of cmg_gateway_auth_total.
const (
	resultSuccess     = "success"
	resultMissing     = "missing"
	resultFailure     = "failure"
	resultRevoked     = "revoked"
	resultUnavailable = "revocation_unavailable"
)

// Metrics are the authentication metrics of DESIGN section 11. The gateway
// makes one with NewMetrics and passes it to every Authenticator it builds
// (one per configuration reload). A nil *Metrics records nothing.
type Metrics struct {
	auth           *prometheus.CounterVec
	crlLastSuccess prometheus.Gauge
	crlFailures    prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (none when reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		auth: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cmg_gateway_auth_total",
			Help: "Device authentications by method (certificate, site_token, oidc, none) and result (success, missing, failure, revoked, revocation_unavailable).",
		}, []string{"method", "result"}),
		crlLastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "cmg_crl_last_success_timestamp_seconds",
			Help: "The oldest of the last successful loads of the CRLs in use (0 while one has never loaded).",
		}),
		crlFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cmg_crl_failures_total",
			Help: "Failed CRL loads and fetches.",
		}),
	}
	// Create the series that can occur, so rates work from the first scrape.
	m.auth.WithLabelValues(string(methodNone), resultMissing)
	m.auth.WithLabelValues(string(methodNone), resultFailure)
	for _, meth := range []Method{Certificate, SiteToken, OIDC} {
		m.auth.WithLabelValues(string(meth), resultSuccess)
		m.auth.WithLabelValues(string(meth), resultFailure)
	}
	m.auth.WithLabelValues(string(Certificate), resultRevoked)
	m.auth.WithLabelValues(string(Certificate), resultUnavailable)
	return m
}

func (m *Metrics) countAuth(method Method, result string) {
	if m != nil {
		m.auth.WithLabelValues(string(method), result).Inc()
	}
}

func (m *Metrics) crlFailed() {
	if m != nil {
		m.crlFailures.Inc()
	}
}

// crlOldestSuccess sets the gauge to t, the oldest last success of the CRLs in
// use (zero when one never loaded).
func (m *Metrics) crlOldestSuccess(t time.Time) {
	if m == nil {
		return
	}
	if t.IsZero() {
		m.crlLastSuccess.Set(0)
		return
	}
	m.crlLastSuccess.Set(float64(t.UnixNano()) / 1e9)
}
