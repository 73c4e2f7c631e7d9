package profile

import "github.com/cmg-gateway/cmg/metrics/cost"

// ClassCost is one class's share of a device's month in the model.
type ClassCost struct {
	Name     string  `json:"name"`
	Kind     Kind    `json:"kind"`
	Role     string  `json:"role"`
	PerMonth float64 `json:"per_month"`
	// Exchanges is HTTP exchanges per month; NewConnections the connections
	// the class opens per month.
	Exchanges      float64 `json:"exchanges"`
	NewConnections float64 `json:"new_connections"`
	// ToDevice and ToSite are the bytes per month of each leg.
	ToDevice float64 `json:"to_device_bytes"`
	ToSite   float64 `json:"to_site_bytes"`
	// Simulated is false for a kind the load tester does not run yet.
	Simulated bool `json:"simulated"`
}

// Total is both legs.
func (c ClassCost) Total() float64 { return c.ToDevice + c.ToSite }

// Model is a device's month under one habit set, by class and in total.
type Model struct {
	Profile string      `json:"profile"`
	Habits  string      `json:"habits"`
	Auth    string      `json:"auth"`
	Classes []ClassCost `json:"classes"`
	// ToDevice, ToSite and Total are per device per month, in bytes.
	ToDevice  float64 `json:"to_device_bytes"`
	ToSite    float64 `json:"to_site_bytes"`
	Total     float64 `json:"total_bytes"`
	Exchanges float64 `json:"exchanges"`
}

// Class returns the cost of the class of that name.
func (m Model) Class(name string) (ClassCost, bool) {
	for _, c := range m.Classes {
		if c.Name == name {
			return c, true
		}
	}
	return ClassCost{}, false
}

// Model prices a device's month under the habit set of that name, class by
// class, as client-traffic.md section 6 does: per exchange the request headers
// and tunnel framing go to the site, the response headers to the device; the
// first exchange of an occurrence that opens a connection adds the TLS
// handshake (resumed for the share of connections that resume); then the
// bodies. A class that follows another opens no connection.
//
// Under cmg's habits every occurrence is priced as opening a connection,
// though a device that keeps its connection alive often reuses one: the model
// is an upper bound there, and the load tester measures what reuse saves.
func (p *Profile) Model(habits string) Model {
	h := p.HabitsFor(habits)
	f := p.Fixed
	reqHeaders := float64(f.RequestHeaders)
	if p.Auth == AuthCertificate {
		reqHeaders -= float64(f.BearerToken)
	}
	handshake := float64(f.TLSFullHandshake)
	if h.TLSResumption {
		handshake = h.ResumedShare*float64(f.TLSResumedHandshake) + (1-h.ResumedShare)*float64(f.TLSFullHandshake)
	}
	m := Model{Profile: p.Name, Habits: habits, Auth: p.Auth}
	for _, c := range p.Classes {
		if !c.RunsUnder(habits) {
			continue
		}
		n := c.Monthly()
		cc := ClassCost{Name: c.Name, Kind: c.Kind, Role: c.Kind.Role(), PerMonth: n, Simulated: c.Kind.Simulated()}
		x := float64(c.Exchanges)
		cc.Exchanges = n * x
		if c.Follows == "" {
			cc.NewConnections = n
		}
		cc.ToSite = n * (x*(reqHeaders+float64(f.TunnelFraming)) + float64(c.Request))
		cc.ToDevice = n*(x*float64(f.ResponseHeaders)+float64(c.Response)) + cc.NewConnections*handshake
		m.Classes = append(m.Classes, cc)
		m.ToDevice += cc.ToDevice
		m.ToSite += cc.ToSite
		m.Exchanges += cc.Exchanges
	}
	m.Total = m.ToDevice + m.ToSite
	return m
}

// PerDeviceMonthlyBytes implements metrics/cost.TrafficModel: a device's month
// with cmg's habits (low) and with the original product's (high).
func (p *Profile) PerDeviceMonthlyBytes() (low, high float64) {
	return p.Model(CMG).Total, p.Model(Original).Total
}

var _ cost.TrafficModel = (*Profile)(nil)
