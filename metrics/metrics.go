// Package metrics builds the Prometheus registry each cmg process exports: Go and
// process collectors, cmg_build_info, and the histogram shapes the appliance uses.
// It owns no metric of the appliance itself (those live with the code that
// records them) and no global state: every registry is made here and passed in.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cmg-gateway/cmg/version"
)

// Namespace prefixes every cmg metric.
const Namespace = "cmg"

// NewRegistry returns a registry with the Go and process collectors and
// cmg_build_info. component ("gateway", "connector", ...) is a label of build_info.
func NewRegistry(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cmg_build_info",
		Help: "Build information of the running cmg binary (always 1).",
	}, []string{"version", "commit", "goversion", "component"})
	bi.WithLabelValues(version.Version, version.CommitOrVCS(), runtime.Version(), component).Set(1)
	reg.MustRegister(bi)
	return reg
}

// Handler serves the registry's metrics, in OpenMetrics when the scraper asks
// (so exemplars and native histograms reach it).
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})
}

// LatencyBuckets are classic histogram buckets for 1 ms to 60 s.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// HistogramOpts returns options for a latency histogram with the classic buckets
// and a native (sparse) histogram beside them.
func HistogramOpts(name, help string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         LatencyBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}
}
