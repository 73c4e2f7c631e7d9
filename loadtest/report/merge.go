package report

import (
	"errors"
)

// Merge combines the reports of the shards of one test: exchanges, errors,
// latency histograms, connections and the device leg add up; the site leg and
// the gateway's counters are the whole test's in every shard that ran at the
// same time, so they are taken from the shard whose run window covers the
// others best (the longest). Timelines are merged by bucket.
func Merge(reps []*Report) (*Report, error) {
	if len(reps) == 0 {
		return nil, errors.New("no report")
	}
	base := reps[0]
	for _, r := range reps[1:] {
		if r.WallSeconds > base.WallSeconds {
			base = r
		}
	}
	m := *base
	m.Shard = ""
	m.Devices = 0
	m.Throughput = Throughput{}
	m.Roles = map[string]Summary{}
	m.Errors = map[string]uint64{}
	m.Histograms = map[string]*Histogram{}
	m.Connections = Connections{}
	m.Egress.DeviceLeg = 0
	m.Targets = nil
	errs := map[string]uint64{}
	started, finished := base.Started, base.Finished
	points := map[int]*Point{}
	var bucket float64
	for _, r := range reps {
		if r.Profile != base.Profile || r.Habits != base.Habits || r.SimulatedSeconds != base.SimulatedSeconds {
			return nil, errors.New("the reports are not shards of one test (profile, habits or span differ)")
		}
		m.Devices += r.Devices
		m.Throughput.Exchanges += r.Throughput.Exchanges
		m.Throughput.Errors += r.Throughput.Errors
		m.Connections.Opened += r.Connections.Opened
		m.Connections.Resumed += r.Connections.Resumed
		m.Connections.ConnectFailures += r.Connections.ConnectFailures
		m.Egress.DeviceLeg += r.Egress.DeviceLeg
		for k, v := range r.Errors {
			m.Errors[k] += v
		}
		for role, h := range r.Histograms {
			if m.Histograms[role] == nil {
				m.Histograms[role] = &Histogram{}
			}
			m.Histograms[role].Merge(h)
			errs[role] += r.Roles[role].Errors
		}
		if r.Started.Before(started) {
			started = r.Started
		}
		if r.Finished.After(finished) {
			finished = r.Finished
		}
		bucket = r.Timeline.BucketSeconds
		for i, p := range r.Timeline.Points {
			q := points[i]
			if q == nil {
				q = &Point{T: p.T, Exchanges: map[string]uint64{}, P50: map[string]float64{}, P95: map[string]float64{}, P99: map[string]float64{}}
				points[i] = q
			}
			for k, v := range p.Exchanges {
				q.Exchanges[k] += v
			}
			for k, v := range p.P99 { // the worst shard's percentile: an upper bound
				q.P50[k] = max(q.P50[k], p.P50[k])
				q.P95[k] = max(q.P95[k], p.P95[k])
				q.P99[k] = max(q.P99[k], v)
			}
			q.Errors += p.Errors
			q.Read += p.Read
		}
		m.Targets = append(m.Targets, r.Targets...)
	}
	for role, h := range m.Histograms {
		m.Roles[role] = h.Summarize(errs[role])
	}
	m.Started, m.Finished = started, finished
	m.WallSeconds = finished.Sub(started).Seconds()
	if m.WallSeconds > 0 {
		m.Throughput.PerSecond = float64(m.Throughput.Exchanges) / m.WallSeconds
	}
	m.Timeline = Timeline{BucketSeconds: bucket}
	for i := 0; i < len(points); i++ {
		if p := points[i]; p != nil {
			m.Timeline.Points = append(m.Timeline.Points, *p)
		}
	}
	e := &m.Egress
	e.MonthlyDevice = perDeviceMonth(float64(e.DeviceLeg), m.Devices, e.MonthFraction)
	if e.SiteLeg != nil {
		e.setSiteLeg(perDeviceMonth(float64(*e.SiteLeg), m.Devices, e.MonthFraction))
	}
	if m.Gateway != nil {
		g := compareGateway(m.Gateway.Before, m.Gateway.After, e)
		m.Gateway = g
	}
	m.Classes = nil // per-class figures are per shard
	m.Notes = append([]string{"merged from shards; per-class figures are in the shards' reports"}, base.Notes...)
	return &m, nil
}
