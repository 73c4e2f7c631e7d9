package report

import (
	"math"
	"time"
)

// Histogram counts latencies in log-spaced buckets (4 % wide, from 1 µs to
// over an hour), so a quantile is off by at most 2 %; the maximum is exact.
// Histograms of shards add up (Merge).
type Histogram struct {
	Counts []uint64 `json:"counts"`
	N      uint64   `json:"n"`
	MaxNS  int64    `json:"max_ns"`
	SumNS  float64  `json:"sum_ns"`
}

const (
	histGrowth  = 1.04
	histBuckets = 600 // 1.04^600 µs is about 5.7e10 µs
)

var logGrowth = math.Log(histGrowth)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	return min(int(math.Log(us)/logGrowth)+1, histBuckets-1)
}

// upper is bucket i's upper bound.
func upper(i int) time.Duration {
	if i == 0 {
		return time.Microsecond
	}
	return time.Duration(math.Pow(histGrowth, float64(i)) * float64(time.Microsecond))
}

// Add counts one latency.
func (h *Histogram) Add(d time.Duration) {
	if h.Counts == nil {
		h.Counts = make([]uint64, histBuckets)
	}
	h.Counts[bucketOf(d)]++
	h.N++
	h.SumNS += float64(d)
	if int64(d) > h.MaxNS {
		h.MaxNS = int64(d)
	}
}

// Merge adds o's counts.
func (h *Histogram) Merge(o *Histogram) {
	if o.N == 0 {
		return
	}
	if h.Counts == nil {
		h.Counts = make([]uint64, histBuckets)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.SumNS += o.SumNS
	h.MaxNS = max(h.MaxNS, o.MaxNS)
}

// Quantile returns the q-quantile (0 < q <= 1): the upper bound of the bucket
// holding it, capped at the maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank && c > 0 {
			return min(upper(i), time.Duration(h.MaxNS))
		}
	}
	return time.Duration(h.MaxNS)
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count  uint64  `json:"count"`
	Errors uint64  `json:"errors"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Summarize returns h's summary with errs errors.
func (h *Histogram) Summarize(errs uint64) Summary {
	s := Summary{Count: h.N, Errors: errs}
	if h.N > 0 {
		s.MeanMS = math.Round(h.SumNS/float64(h.N)/1e3) / 1e3
		s.P50MS = ms(h.Quantile(0.50))
		s.P95MS = ms(h.Quantile(0.95))
		s.P99MS = ms(h.Quantile(0.99))
		s.MaxMS = ms(time.Duration(h.MaxNS))
	}
	return s
}
