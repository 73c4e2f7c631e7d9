package report

import (
	"math"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/device"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}}
	for _, tt := range tests {
		got := h.Quantile(tt.q)
		if rel := math.Abs(float64(got-tt.want)) / float64(tt.want); rel > 0.04 {
			t.Errorf("q%.2f: got %v, want %v within 4 %%", tt.q, got, tt.want)
		}
	}
	if h.MaxNS != int64(time.Second) {
		t.Errorf("max: got %v, want 1s", time.Duration(h.MaxNS))
	}
	var a, b Histogram
	for i := 1; i <= 1000; i++ {
		if i%2 == 0 {
			a.Add(time.Duration(i) * time.Millisecond)
		} else {
			b.Add(time.Duration(i) * time.Millisecond)
		}
	}
	a.Merge(&b)
	if a.N != h.N || a.Quantile(0.99) != h.Quantile(0.99) || a.MaxNS != h.MaxNS {
		t.Errorf("merged: got n %d p99 %v, want n %d p99 %v", a.N, a.Quantile(0.99), h.N, h.Quantile(0.99))
	}
}

// sampleReport builds a report from synthetic results: 2 devices over a
// simulated day, with a site that received 3 MB.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	start := time.Now()
	rec := NewRecorder(start, time.Second)
	for i := range 600 {
		role, class := profile.RoleMP, "machine_policy"
		if i%5 == 0 {
			role, class = profile.RoleSUP, "sup_delta_scan"
		}
		x := device.Result{Class: class, Role: role, End: start.Add(time.Duration(i) * 100 * time.Millisecond),
			Latency: time.Duration(5+i%50) * time.Millisecond, Status: 200, Read: 10000, Written: 6000}
		if i%100 == 7 {
			x.Status, x.Reason = 503, "ConnectorUnavailable"
		}
		rec.Exchange(x)
	}
	p, _ := profile.Builtin("default")
	c := &device.Counters{}
	c.Read.Add(6_000_000)
	// The site leg is the roles' bytes; "other" (health probes) is left out.
	before := roles.Stats{WireBytesReceived: 1000, Roles: map[roles.Role]roles.RoleStats{
		roles.RoleMP: {WireBytesReceived: 1000}, roles.RoleOther: {WireBytesReceived: 0}}}
	after := roles.Stats{WireBytesReceived: 3_501_000, Roles: map[roles.Role]roles.RoleStats{
		roles.RoleMP: {WireBytesReceived: 2_001_000}, roles.RoleSUP: {WireBytesReceived: 1_000_000}, roles.RoleOther: {WireBytesReceived: 500_000}}}
	return rec.Build(Inputs{
		Started: start, Finished: start.Add(60 * time.Second), Simulated: 24 * time.Hour, TimeScale: 1440,
		Devices: 2, Profile: p, Habits: profile.Original, Identity: "test", Spread: device.SpreadConnection,
		Counters: c, SiteBefore: &before, SiteAfter: &after,
	})
}

func TestBuild(t *testing.T) {
	r := sampleReport(t)
	if r.Throughput.Exchanges != 600 || r.Throughput.Errors != 6 || r.Errors["ConnectorUnavailable"] != 6 {
		t.Errorf("got %d exchanges, %d errors %v; want 600, 6 ConnectorUnavailable", r.Throughput.Exchanges, r.Throughput.Errors, r.Errors)
	}
	// 6 MB device leg and 3 MB site leg over 2 devices and 1/30 month:
	// 90 MB and 45 MB per device per month.
	e := r.Egress
	if !near(e.MonthlyDevice, 90e6) || e.MonthlySite == nil || !near(*e.MonthlySite, 45e6) || !near(*e.MonthlyTotal, 135e6) {
		t.Errorf("monthly: got device %v site %v total %v; want 90e6, 45e6, 135e6", e.MonthlyDevice, e.MonthlySite, e.MonthlyTotal)
	}
	if e.Reference != 100e6 || e.VsReference == nil || !near(*e.VsReference, 0.35) {
		t.Errorf("vs reference: got %v of %v, want +35 %%", e.VsReference, e.Reference)
	}
	if len(r.Timeline.Points) < 50 || r.Roles[profile.RoleSUP].Count != 120 {
		t.Errorf("got %d timeline points and %d SUP exchanges; want 60 and 120", len(r.Timeline.Points), r.Roles[profile.RoleSUP].Count)
	}
}

func TestMerge(t *testing.T) {
	a, b := sampleReport(t), sampleReport(t)
	m, err := Merge([]*Report{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if m.Devices != 4 || m.Throughput.Exchanges != 1200 || m.Egress.DeviceLeg != 12_000_000 || m.Errors["ConnectorUnavailable"] != 12 {
		t.Errorf("got %d devices, %d exchanges, %d device bytes, %v", m.Devices, m.Throughput.Exchanges, m.Egress.DeviceLeg, m.Errors)
	}
	// The site leg is the whole test's in each shard: taken once.
	if m.Egress.MonthlySite == nil || !near(*m.Egress.MonthlySite, 22.5e6) || !near(m.Egress.MonthlyDevice, 90e6) {
		t.Errorf("monthly: got device %v site %v; want 90e6 and 22.5e6", m.Egress.MonthlyDevice, m.Egress.MonthlySite)
	}
	if m.Roles[profile.RoleMP].P99MS != a.Roles[profile.RoleMP].P99MS {
		t.Errorf("p99 of two equal shards: got %v, want %v", m.Roles[profile.RoleMP].P99MS, a.Roles[profile.RoleMP].P99MS)
	}
	c := *b
	c.Habits = profile.CMG
	if _, err := Merge([]*Report{a, &c}); err == nil {
		t.Error("merged reports of different tests")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }
