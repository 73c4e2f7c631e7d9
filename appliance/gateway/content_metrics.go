package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/contentcache"
)

// contentMetrics are the content metrics of DESIGN section 11.
type contentMetrics struct {
	requests [3]prometheus.Counter // contentHit, contentMiss, contentError
	served   [2]prometheus.Counter // sourceCache, sourceTunnel
}

func newContentMetrics(reg prometheus.Registerer, cache *contentcache.Cache) (*contentMetrics, error) {
	m := &contentMetrics{}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_content_requests_total",
		Help: "Content requests by result: hit (served without this request crossing the tunnel: from the cache, from a fetch another request started, or a HEAD answered from a manifest in memory), miss (this request fetched through the tunnel: the file, a stream-through, or the manifest), error.",
	}, []string{"result"})
	served := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmg_content_served_bytes_total",
		Help: "Content body bytes sent to devices, by source: cache (bytes that did not cross the tunnel for this request) or tunnel (the request that fetched them, or streamed through).",
	}, []string{"source"})
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cmg_content_cache_bytes",
		Help: "Disk space the content cache counts against its bound: cached files and the whole size of files being fetched.",
	}, func() float64 {
		if cache == nil {
			return 0
		}
		return float64(cache.Bytes())
	})
	for i, r := range []string{"hit", "miss", "error"} {
		m.requests[i] = requests.WithLabelValues(r)
	}
	for i, s := range []string{"cache", "tunnel"} {
		m.served[i] = served.WithLabelValues(s)
	}
	for _, c := range []prometheus.Collector{requests, served, bytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
