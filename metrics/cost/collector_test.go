package cost

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gather scrapes reg into "name{label=value,...}" → value.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

// knownTraffic is a meter under tierPrices (EUR; 100 GB free, 0.10 to
// 1,000 GB, 0.05 above; 0.5 an hour; 2 instances; capacity 5,000) that has seen
// 1,000 devices and sent 60 MB a minute for an hour.
func knownTraffic(t *testing.T) (*Meter, *fakeClock) {
	t.Helper()
	c := newFakeClock()
	cfg := testConfig(t)
	cfg.Prices = tierPrices()
	m, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i := range 1000 {
		m.ObserveDevice(fmt.Sprintf("device-%d", i))
	}
	for range 60 {
		m.AddEgress(60e6)
		c.Advance(time.Minute)
		m.Egress().Sample()
	}
	return m, c
}

func TestCollectorKnownTraffic(t *testing.T) {
	m, _ := knownTraffic(t)
	reg := prometheus.NewPedanticRegistry()
	if _, err := NewCollector(reg, m); err != nil {
		t.Fatalf("NewCollector: %v", err)
	}
	// Hand computation:
	//   rate = 60 × 60 MB / 3,600 s = 1 MB/s
	//   projected = 1e6 B/s × 2,592,000 s = 2.592e12 B = 2,592 GB
	//   the service (2 instances) moves 5,184 GB: 100 × 0 + 900 × 0.10 +
	//   4,184 × 0.05 = 299.20; this instance's share = 149.60
	//   compute = 0.5 × 720 = 360; total = 509.60
	//   per client = 2.592e12 / 1,000 = 2.592e9
	want := map[string]float64{
		"cmg_gateway_clients_active{window=1h}":                      1000,
		"cmg_gateway_clients_active{window=24h}":                     1000,
		"cmg_gateway_clients_active{window=30d}":                     1000,
		"cmg_gateway_capacity_devices{}":                             5000,
		"cmg_cost_egress_price_per_gigabyte{currency=EUR}":           0.1,
		"cmg_cost_projected_monthly_egress_bytes{}":                  2.592e12,
		"cmg_cost_projected_monthly{component=egress,currency=EUR}":  149.6,
		"cmg_cost_projected_monthly{component=compute,currency=EUR}": 360,
		"cmg_cost_projected_monthly{component=total,currency=EUR}":   509.6,
		"cmg_cost_egress_bytes_per_client_monthly{}":                 2.592e9,
		"cmg_cost_model_egress_bytes_per_client_monthly{bound=low}":  100e6,
		"cmg_cost_model_egress_bytes_per_client_monthly{bound=high}": 300e6,
	}
	got := gather(t, reg)
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: missing", k)
			continue
		}
		checkNear(t, k, g, w)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: exported, not wanted", k)
		}
	}
}

func TestCollectorNoDevices(t *testing.T) {
	c := newFakeClock()
	m, err := New(DefaultConfig(), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	m.AddEgress(1e6)
	c.Advance(time.Minute)
	reg := prometheus.NewPedanticRegistry()
	if _, err := NewCollector(reg, m); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	if v, ok := got["cmg_cost_egress_bytes_per_client_monthly{}"]; ok {
		t.Errorf("per-client egress with no device: got %v, want the series absent", v)
	}
	if v := got["cmg_gateway_clients_active{window=24h}"]; v != 0 {
		t.Errorf("clients active: got %v, want 0", v)
	}
}

func TestCollectorPriceReload(t *testing.T) {
	m, _ := knownTraffic(t)
	reg := prometheus.NewPedanticRegistry()
	if _, err := NewCollector(reg, m); err != nil {
		t.Fatal(err)
	}
	p := m.Prices()
	p.Currency = "CHF"
	p.EgressTiers = []Tier{{PricePerGB: 0.01}}
	p.Instances = 1
	if err := m.SetPrices(p); err != nil {
		t.Fatalf("SetPrices: %v", err)
	}
	bad := p
	bad.Instances = 40
	if err := m.SetPrices(bad); err == nil {
		t.Errorf("SetPrices with 40 instances: got no error, want one")
	}
	got := gather(t, reg)
	checkNear(t, "egress at a flat 0.01", got["cmg_cost_projected_monthly{component=egress,currency=CHF}"], 2592*0.01)
	for k := range got {
		if strings.Contains(k, "EUR") {
			t.Errorf("%s: a stale series of the old currency", k)
		}
	}
}

func TestNewCollectorRegistersOnce(t *testing.T) {
	m, _ := knownTraffic(t)
	reg := prometheus.NewRegistry()
	if _, err := NewCollector(reg, m); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCollector(reg, m); err == nil {
		t.Errorf("a second collector on the same registry: got no error, want one")
	}
}
