package report

import (
	"sort"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/device"
	"github.com/cmg-gateway/cmg/loadtest/external"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// Report is what a run measured. Byte figures are bytes; "monthly" figures are
// per device per 30-day month, projected from the simulated span.
type Report struct {
	Tool             string    `json:"tool"`
	Started          time.Time `json:"started"`
	Finished         time.Time `json:"finished"`
	WallSeconds      float64   `json:"wall_seconds"`
	SimulatedSeconds float64   `json:"simulated_seconds"`
	TimeScale        float64   `json:"time_scale"`
	Devices          int       `json:"devices"`
	Shard            string    `json:"shard,omitempty"`
	Profile          string    `json:"profile"`
	Habits           string    `json:"habits"`
	Auth             string    `json:"auth"`
	Identity         string    `json:"identity"`
	Spread           string    `json:"spread"`
	ServerChain      string    `json:"server_chain,omitempty"`

	Targets     []device.TargetStats  `json:"targets"`
	Throughput  Throughput            `json:"throughput"`
	Roles       map[string]Summary    `json:"roles"`
	Classes     []ClassReport         `json:"classes"`
	Errors      map[string]uint64     `json:"errors"`
	Connections Connections           `json:"connections"`
	Egress      Egress                `json:"egress"`
	Gateway     *GatewayComparison    `json:"gateway,omitempty"`
	Timeline    Timeline              `json:"timeline"`
	Histograms  map[string]*Histogram `json:"histograms"`
	Notes       []string              `json:"notes,omitempty"`
	Model       profile.Model         `json:"model"`
	SiteKinds   map[string]uint64     `json:"site_requests_by_kind,omitempty"`
}

// Throughput is exchanges over the run.
type Throughput struct {
	Exchanges uint64 `json:"exchanges"`
	Errors    uint64 `json:"errors"`
	// PerSecond is exchanges per wall second.
	PerSecond float64 `json:"per_second"`
}

// ClassReport is one class's exchanges and device-leg bytes.
type ClassReport struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Role string `json:"role"`
	Summary
	// Read and Written are the device sockets' bytes of the class's exchanges.
	Read    int64 `json:"device_read_bytes"`
	Written int64 `json:"device_written_bytes"`
	// NewConns is the connections the class opened, Resumed those resumed.
	NewConns uint64 `json:"new_connections"`
	Resumed  uint64 `json:"resumed"`
	// MonthlyRead is Read per device per month; ModelToDevice the model's
	// figure for the same leg.
	MonthlyRead   float64 `json:"monthly_device_read_bytes"`
	ModelToDevice float64 `json:"model_to_device_bytes"`
	ModelToSite   float64 `json:"model_to_site_bytes"`
}

// Connections counts the devices' TLS connections.
type Connections struct {
	Opened          int64 `json:"opened"`
	Resumed         int64 `json:"resumed"`
	ConnectFailures int64 `json:"connect_failures"`
}

// Egress is both legs as the load tester measured them.
type Egress struct {
	// DeviceLeg is bytes received at the devices' sockets, TLS included.
	DeviceLeg int64 `json:"device_leg_bytes"`
	// SiteLeg is bytes the simulated site received (its socket counters), nil
	// when no site was given.
	SiteLeg    *int64           `json:"site_leg_bytes,omitempty"`
	SiteByRole map[string]int64 `json:"site_leg_by_role,omitempty"`
	// MonthFraction is the simulated span over a 30-day month.
	MonthFraction float64 `json:"month_fraction"`
	// Monthly is per device per month: each leg and their total.
	MonthlyDevice float64  `json:"monthly_device_leg_bytes"`
	MonthlySite   *float64 `json:"monthly_site_leg_bytes,omitempty"`
	MonthlyTotal  *float64 `json:"monthly_total_bytes,omitempty"`
	// Model is the profile's model of the simulated classes under the run's
	// habits; ModelAll includes classes not simulated yet.
	ModelDevice float64 `json:"model_device_leg_bytes"`
	ModelSite   float64 `json:"model_site_leg_bytes"`
	ModelTotal  float64 `json:"model_total_bytes"`
	ModelAll    float64 `json:"model_all_classes_bytes"`
	// Reference is the original product's planning figure for the profile
	// (100 MB default, 300 MB dynamic), 0 for other profiles.
	Reference float64 `json:"reference_bytes"`
	// VsModel and VsReference are MonthlyTotal / ModelTotal - 1 and
	// MonthlyTotal / Reference - 1.
	VsModel     *float64 `json:"vs_model,omitempty"`
	VsReference *float64 `json:"vs_reference,omitempty"`
}

// perDeviceMonth scales bytes moved in the run to bytes per device per month.
func perDeviceMonth(bytes float64, devices int, monthFraction float64) float64 {
	if devices == 0 || monthFraction == 0 {
		return 0
	}
	return bytes / float64(devices) / monthFraction
}

// setSiteLeg records the site leg's monthly bytes per device and what follows
// from it: the total and its distance from the model and the reference.
func (e *Egress) setSiteLeg(monthlySite float64) {
	total := e.MonthlyDevice + monthlySite
	e.MonthlySite, e.MonthlyTotal = &monthlySite, &total
	if e.ModelTotal > 0 {
		v := total/e.ModelTotal - 1
		e.VsModel = &v
	}
	if e.Reference > 0 {
		v := total/e.Reference - 1
		e.VsReference = &v
	}
}

// GatewayComparison sets the gateway's own counters beside the measurements:
// deltas over the run, summed over the instances scraped.
type GatewayComparison struct {
	Before []external.GatewaySample `json:"before"`
	After  []external.GatewaySample `json:"after"`
	// WireEgressClient is the delta of cmg_gateway_wire_egress_bytes_total{listener="client"}.
	WireEgressClient *float64 `json:"wire_egress_client_bytes,omitempty"`
	// EgressConnector is the delta of cmg_gateway_egress_bytes_total{peer="connector"}.
	EgressConnector *float64 `json:"egress_connector_bytes,omitempty"`
	// PerClientMonthly is cmg_cost_egress_bytes_per_client_monthly at the end,
	// summed over instances (each exports its own share).
	PerClientMonthly *float64 `json:"egress_bytes_per_client_monthly,omitempty"`
	// DeviceVsWire is DeviceLeg / WireEgressClient; SiteVsConnector is
	// SiteLeg / EgressConnector; ProjectionVsCost is MonthlyTotal / PerClientMonthly.
	DeviceVsWire     *float64 `json:"device_leg_vs_wire,omitempty"`
	SiteVsConnector  *float64 `json:"site_leg_vs_connector,omitempty"`
	ProjectionVsCost *float64 `json:"projection_vs_cost_metric,omitempty"`
	Missing          []string `json:"missing_metrics,omitempty"`
}

// Timeline is the run in time buckets.
type Timeline struct {
	BucketSeconds float64 `json:"bucket_seconds"`
	Points        []Point `json:"points"`
}

// Point is one bucket: exchanges and latency per role, errors, bytes read.
type Point struct {
	T         float64            `json:"t"`
	Exchanges map[string]uint64  `json:"exchanges"`
	P50       map[string]float64 `json:"p50_ms"`
	P95       map[string]float64 `json:"p95_ms"`
	P99       map[string]float64 `json:"p99_ms"`
	Errors    uint64             `json:"errors"`
	Read      int64              `json:"read_bytes"`
}

// Inputs are what Build needs besides the recorder.
type Inputs struct {
	Started, Finished time.Time
	Simulated         time.Duration
	TimeScale         float64
	Devices           int
	Shard             string
	Profile           *profile.Profile
	Habits            string
	Identity          string
	Spread            string
	ServerChain       string
	Targets           []device.TargetStats
	Counters          *device.Counters
	// SiteBefore and SiteAfter are the site's counters around the run (nil: no site).
	SiteBefore, SiteAfter *roles.Stats
	// GatewayBefore and GatewayAfter are scrapes around the run (nil: none).
	GatewayBefore, GatewayAfter []external.GatewaySample
	Notes                       []string
}

// References are the original product's planning figures per built-in profile.
var References = map[string]float64{"default": 100e6, "dynamic": 300e6}

// Build makes the report.
func (r *Recorder) Build(in Inputs) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{
		Tool: "cmg loadtest", Started: in.Started, Finished: in.Finished,
		WallSeconds: in.Finished.Sub(in.Started).Seconds(), SimulatedSeconds: in.Simulated.Seconds(),
		TimeScale: in.TimeScale, Devices: in.Devices, Shard: in.Shard,
		Profile: in.Profile.Name, Habits: in.Habits, Auth: in.Profile.Auth, Identity: in.Identity, Spread: in.Spread,
		ServerChain: in.ServerChain, Targets: in.Targets,
		Roles: map[string]Summary{}, Errors: map[string]uint64{}, Histograms: map[string]*Histogram{},
		Notes: in.Notes,
	}
	model := in.Profile.Model(in.Habits)
	rep.Model = model
	monthFrac := in.Simulated.Seconds() / profile.Month.Seconds()
	perDevMonth := func(b float64) float64 { return perDeviceMonth(b, in.Devices, monthFrac) }
	for role, t := range r.roles {
		rep.Roles[role] = t.hist.Summarize(t.errors)
		h := t.hist
		rep.Histograms[role] = &h
		rep.Throughput.Exchanges += t.hist.N
		rep.Throughput.Errors += t.errors
	}
	if rep.WallSeconds > 0 {
		rep.Throughput.PerSecond = float64(rep.Throughput.Exchanges) / rep.WallSeconds
	}
	for k, v := range r.reasons {
		rep.Errors[k] = v
	}
	for _, c := range in.Profile.Classes {
		t := r.classes[c.Name]
		mc, inModel := model.Class(c.Name)
		if t == nil && !inModel {
			continue
		}
		if t == nil {
			t = &tally{}
		}
		cr := ClassReport{
			Name: c.Name, Kind: string(c.Kind), Role: c.Kind.Role(), Summary: t.hist.Summarize(t.errors),
			Read: t.read, Written: t.writ, NewConns: t.newConns, Resumed: t.resumed,
			MonthlyRead: perDevMonth(float64(t.read)), ModelToDevice: mc.ToDevice, ModelToSite: mc.ToSite,
		}
		rep.Classes = append(rep.Classes, cr)
	}
	c := in.Counters
	rep.Connections = Connections{Opened: c.Connections.Load(), Resumed: c.Resumed.Load(), ConnectFailures: c.ConnectFailures.Load()}

	e := &rep.Egress
	e.DeviceLeg = c.Read.Load()
	e.MonthFraction = monthFrac
	e.MonthlyDevice = perDevMonth(float64(e.DeviceLeg))
	for _, mc := range model.Classes {
		if mc.Simulated {
			e.ModelDevice += mc.ToDevice
			e.ModelSite += mc.ToSite
		}
	}
	e.ModelTotal = e.ModelDevice + e.ModelSite
	e.ModelAll = model.Total
	e.Reference = References[in.Profile.Name]
	if in.SiteBefore != nil && in.SiteAfter != nil {
		// The roles' traffic only: "other" holds the connectors' health probes
		// and the stats page, which are no device's egress.
		var site int64
		e.SiteByRole = map[string]int64{}
		for role, a := range in.SiteAfter.Roles {
			n := int64(a.WireBytesReceived - in.SiteBefore.Roles[role].WireBytesReceived)
			e.SiteByRole[string(role)] = n
			if role != roles.RoleOther {
				site += n
			}
		}
		e.SiteLeg = &site
		e.setSiteLeg(perDevMonth(float64(site)))
		rep.SiteKinds = map[string]uint64{}
		for k, n := range in.SiteAfter.Kinds {
			if d := n - in.SiteBefore.Kinds[k]; d > 0 {
				rep.SiteKinds[k] = d
			}
		}
	}
	if in.GatewayBefore != nil && in.GatewayAfter != nil {
		rep.Gateway = compareGateway(in.GatewayBefore, in.GatewayAfter, e)
	}
	rep.Timeline = r.timelineLocked()
	return rep
}

func compareGateway(before, after []external.GatewaySample, e *Egress) *GatewayComparison {
	g := &GatewayComparison{Before: before, After: after}
	add := func(acc **float64, v *float64) {
		if v == nil {
			return
		}
		if *acc == nil {
			*acc = new(float64)
		}
		**acc += *v
	}
	missing := map[string]bool{}
	for i := range after {
		if i >= len(before) {
			break
		}
		b, a := before[i], after[i]
		if d := external.Delta(b.WireEgressClient, a.WireEgressClient); d != nil {
			add(&g.WireEgressClient, d)
		} else {
			missing[external.MetricWireEgress+`{listener="client"}`] = true
		}
		if d := external.Delta(b.EgressConnector, a.EgressConnector); d != nil {
			add(&g.EgressConnector, d)
		} else {
			missing[external.MetricEgress+`{peer="connector"}`] = true
		}
		if a.PerClientMonthly != nil {
			add(&g.PerClientMonthly, a.PerClientMonthly)
		} else {
			missing[external.MetricPerClient] = true
		}
	}
	for m := range missing {
		g.Missing = append(g.Missing, m)
	}
	sort.Strings(g.Missing)
	ratio := func(a, b float64) *float64 {
		if b == 0 {
			return nil
		}
		v := a / b
		return &v
	}
	if g.WireEgressClient != nil {
		g.DeviceVsWire = ratio(float64(e.DeviceLeg), *g.WireEgressClient)
	}
	if g.EgressConnector != nil && e.SiteLeg != nil {
		g.SiteVsConnector = ratio(float64(*e.SiteLeg), *g.EgressConnector)
	}
	if g.PerClientMonthly != nil && e.MonthlyTotal != nil {
		g.ProjectionVsCost = ratio(*e.MonthlyTotal, *g.PerClientMonthly)
	}
	return g
}

func (r *Recorder) timelineLocked() Timeline {
	tl := Timeline{BucketSeconds: r.bucket.Seconds()}
	for i, s := range r.timeline {
		p := Point{
			T: float64(i+1) * r.bucket.Seconds(), Exchanges: map[string]uint64{},
			P50: map[string]float64{}, P95: map[string]float64{}, P99: map[string]float64{},
			Errors: s.errors, Read: s.read,
		}
		for role, h := range s.roles {
			p.Exchanges[role] = h.N
			p.P50[role] = ms(h.Quantile(0.5))
			p.P95[role] = ms(h.Quantile(0.95))
			p.P99[role] = ms(h.Quantile(0.99))
		}
		tl.Points = append(tl.Points, p)
	}
	return tl
}
