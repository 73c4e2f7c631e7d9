package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/metrics"
)

// Results of cmg_gateway_notifications_total.
const (
	// notifyDelivered: an event written to a device's channel as it arrived.
	notifyDelivered = iota
	// notifyReplayed: a missed event written to a resuming device.
	notifyReplayed
	// notifyNotConnected: a targeted device has no channel on this instance.
	notifyNotConnected
	// notifyDropped: the device fell too far behind; its channel was cut.
	notifyDropped
	// notifyFailed: the write failed, or the channel closed before it.
	notifyFailed
	numNotifyResults
)

var notifyResultLabels = [numNotifyResults]string{"delivered", "replayed", "not_connected", "dropped", "failed"}

// notifyMetrics are the notification channel's metrics (DESIGN section 11).
type notifyMetrics struct {
	channels prometheus.Gauge
	results  [numNotifyResults]prometheus.Counter
	delivery prometheus.Observer
}

// deliveryBuckets reach below a millisecond: most of a delivery's time at the
// gateway is one write.
var deliveryBuckets = append([]float64{.0001, .00025, .0005}, metrics.LatencyBuckets...)

func newNotifyMetrics(reg prometheus.Registerer) (*notifyMetrics, error) {
	m := &notifyMetrics{}
	m.channels = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cmg_gateway_notification_channels",
		Help: "Device notification channels open on this instance.",
	})
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_gateway_notifications_total",
		Help: "Notification events by result: delivered (written as it arrived), replayed (written to a resuming device), not_connected (targeted device without a channel here), dropped (device too far behind, channel cut), failed (write failed or channel closed first).",
	}, []string{"result"})
	opts := metrics.HistogramOpts("cmg_notification_delivery_seconds",
		"Time from a notification's arrival at this instance (on a connector's control stream) to its write on a device's channel.")
	opts.Buckets = deliveryBuckets
	delivery := prometheus.NewHistogram(opts)
	m.delivery = delivery
	for i, l := range notifyResultLabels {
		m.results[i] = results.WithLabelValues(l)
	}
	for _, c := range []prometheus.Collector{m.channels, results, delivery} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
