package cost

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := DefaultPrices().Validate(); err != nil {
		t.Errorf("DefaultPrices: got %v, want valid", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: got %v, want valid", err)
	}
}

func TestPricesValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Prices)
		paths  []string
	}{
		{"lower-case currency", func(p *Prices) { p.Currency = "usd" }, []string{"currency"}},
		{"no tier", func(p *Prices) { p.EgressTiers = nil }, []string{"egress_tiers"}},
		{"bounded last tier", func(p *Prices) { p.EgressTiers = []Tier{{UpToGB: 10, PricePerGB: 1}} }, []string{"egress_tiers[0].up_to_gb"}},
		{"unbounded middle tier", func(p *Prices) { p.EgressTiers = []Tier{{0, 1}, {0, 1}} }, []string{"egress_tiers[0].up_to_gb"}},
		{"tiers out of order", func(p *Prices) { p.EgressTiers = []Tier{{100, 1}, {50, 1}, {0, 1}} }, []string{"egress_tiers[1].up_to_gb"}},
		{"negative price", func(p *Prices) { p.EgressTiers[1].PricePerGB = -1 }, []string{"egress_tiers[1].price_per_gb"}},
		{"infinite end", func(p *Prices) { p.EgressTiers[0].UpToGB = math.Inf(1) }, []string{"egress_tiers[0].up_to_gb"}},
		{"NaN hourly price", func(p *Prices) { p.InstanceHourlyPrice = math.NaN() }, []string{"instance_hourly_price"}},
		{"no instance", func(p *Prices) { p.Instances = 0 }, []string{"instances"}},
		{"seventeen instances", func(p *Prices) { p.Instances = 17 }, []string{"instances"}},
		{"no capacity", func(p *Prices) { p.CapacityDevices = 0 }, []string{"capacity_devices"}},
		{"everything at once", func(p *Prices) {
			p.Currency = ""
			p.Instances = 99
			p.CapacityDevices = -1
		}, []string{"currency", "instances", "capacity_devices"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPrices()
			tt.change(&p)
			var ps *configfile.Problems
			if err := p.Validate(); !errors.As(err, &ps) {
				t.Fatalf("got %v, want *configfile.Problems", err)
			}
			var got []string
			for _, q := range ps.List {
				got = append(got, q.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("got problems at %v, want at %v (%v)", got, tt.paths, ps)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.SaveInterval = time.Second
	c.Prices.Instances = 0
	var ps *configfile.Problems
	if err := c.Validate(); !errors.As(err, &ps) || len(ps.List) != 2 ||
		ps.List[0].Path != "prices.instances" || ps.List[1].Path != "save_interval" {
		t.Errorf("got %v, want problems at prices.instances and save_interval", err)
	}
}

func TestPricesFileLines(t *testing.T) {
	doc := `currency: EUR
egress_tiers:
  - {up_to_gb: 100, price_per_gb: 0}
  - {up_to_gb: 50, price_per_gb: 0.1}
  - {price_per_gb: 0.05}
instances: 20
`
	p := DefaultPrices()
	err := configfile.Decode("prices.yaml", []byte(doc), &p)
	var ps *configfile.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want problems", err)
	}
	want := map[string]int{"egress_tiers[1].up_to_gb": 4, "instances": 6}
	for _, q := range ps.List {
		if want[q.Path] != q.Line {
			t.Errorf("%s: got line %d, want %d", q.Path, q.Line, want[q.Path])
		}
		delete(want, q.Path)
	}
	if len(want) > 0 {
		t.Errorf("missing problems: %v (got %v)", want, ps)
	}
}

func TestPricesFileKeepsDefaults(t *testing.T) {
	p := DefaultPrices()
	if err := configfile.Decode("prices.yaml", []byte("currency: EUR\negress_tiers: [{price_per_gb: 0.02}]\n"), &p); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if p.Currency != "EUR" || len(p.EgressTiers) != 1 || p.InstanceHourlyPrice != DefaultPrices().InstanceHourlyPrice {
		t.Errorf("got %+v, want EUR, one tier, the default hourly price", p)
	}
}

func FuzzPrices(f *testing.F) {
	f.Add([]byte("currency: USD\negress_tiers:\n  - {up_to_gb: 100, price_per_gb: 0}\n  - {price_per_gb: 0.05}\ninstances: 3\n"))
	f.Add([]byte("egress_tiers: [{up_to_gb: 1e300, price_per_gb: 1e300}, {price_per_gb: .inf}]\n"))
	f.Add([]byte("instance_hourly_price: .nan\ncapacity_devices: -3\n"))
	f.Add([]byte("currency: [x]\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := DefaultPrices()
		if err := configfile.Decode("prices.yaml", data, &p); err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Decode accepted prices that Validate refuses: %v", err)
		}
		prev := 0.0
		for _, gb := range []float64{0, 1, 99, 100, 101, 1e4, 1e6, 1e9} {
			c := p.TieredEgressCost(gb * BytesPerGB)
			if c < prev || math.IsNaN(c) {
				t.Fatalf("TieredEgressCost(%v GB) = %v after %v: not monotone", gb, c, prev)
			}
			prev = c
		}
		if _, err := Plan(1000, 1e8, 3e8, p); err != nil {
			t.Fatalf("Plan refused valid prices: %v", err)
		}
	})
}
