package cost

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Meter's figures as the gauges of DESIGN section 11,
// computed at each scrape (so a price reload changes the currency label without
// leaving a stale series behind):
//
//	cmg_gateway_clients_active{window="1h"|"24h"|"30d"}      distinct devices (Windows)
//	cmg_gateway_capacity_devices                              Prices.CapacityDevices
//	cmg_cost_egress_price_per_gigabyte{currency}              Prices.FlatPricePerGB
//	cmg_cost_projected_monthly_egress_bytes                   egress rate over 1 h × 30 days
//	cmg_cost_projected_monthly{component,currency}            egress (this instance's share of
//	                                                          the tiered bill), compute (hourly
//	                                                          price × 720 h), total
//	cmg_cost_egress_bytes_per_client_monthly                  projection / devices over 24 h
//	                                                          (absent while there is none)
//	cmg_cost_model_egress_bytes_per_client_monthly{bound}     100 MB and 300 MB (MB = 10^6 bytes)
//
// Each instance exports its own share; service totals are sums over instances,
// made by recording rules and by `cmg cost`.
type Collector struct {
	m *Meter

	clientsActive  *prometheus.Desc
	capacity       *prometheus.Desc
	price          *prometheus.Desc
	projectedBytes *prometheus.Desc
	projectedCost  *prometheus.Desc
	perClient      *prometheus.Desc
	modelPerClient *prometheus.Desc
}

// NewCollector registers a collector of m's figures on reg.
func NewCollector(reg prometheus.Registerer, m *Meter) (*Collector, error) {
	c := &Collector{
		m: m,
		clientsActive: prometheus.NewDesc("cmg_gateway_clients_active",
			"Distinct devices seen by this instance in the window (HyperLogLog estimate, 0.81 % standard error).",
			[]string{"window"}, nil),
		capacity: prometheus.NewDesc("cmg_gateway_capacity_devices",
			"Devices this instance is configured to serve.", nil, nil),
		price: prometheus.NewDesc("cmg_cost_egress_price_per_gigabyte",
			"Price of a GB (10^9 bytes) of egress: the first egress tier that has a price.",
			[]string{"currency"}, nil),
		projectedBytes: prometheus.NewDesc("cmg_cost_projected_monthly_egress_bytes",
			"This instance's egress (to devices and to connectors) over the last hour, projected over 30 days.", nil, nil),
		projectedCost: prometheus.NewDesc("cmg_cost_projected_monthly",
			"This instance's projected monthly cost: its share of the tiered egress bill, one instance for 720 h, and their total.",
			[]string{"component", "currency"}, nil),
		perClient: prometheus.NewDesc("cmg_cost_egress_bytes_per_client_monthly",
			"Projected monthly egress over the distinct devices of the last 24 h.", nil, nil),
		modelPerClient: prometheus.NewDesc("cmg_cost_model_egress_bytes_per_client_monthly",
			"The reference band of monthly egress per client: 100 MB (low) to 300 MB (high), MB = 10^6 bytes.",
			[]string{"bound"}, nil),
	}
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clientsActive, c.capacity, c.price, c.projectedBytes, c.projectedCost, c.perClient, c.modelPerClient} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for i, n := range s.ClientsActive {
		gauge(c.clientsActive, float64(n), Windows[i].Name)
	}
	gauge(c.capacity, float64(s.CapacityDevices))
	gauge(c.price, s.PricePerGB, s.Currency)
	gauge(c.projectedBytes, s.ProjectedMonthlyEgressBytes)
	gauge(c.projectedCost, s.EgressCost, "egress", s.Currency)
	gauge(c.projectedCost, s.ComputeCost, "compute", s.Currency)
	gauge(c.projectedCost, s.TotalCost, "total", s.Currency)
	if s.PerClientOK {
		gauge(c.perClient, s.PerClientMonthlyBytes)
	}
	gauge(c.modelPerClient, ModelLowBytesPerClientMonthly, "low")
	gauge(c.modelPerClient, ModelHighBytesPerClientMonthly, "high")
}
