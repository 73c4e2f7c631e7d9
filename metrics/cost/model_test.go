package cost

import (
	"math"
	"testing"
)

// tierPrices: 100 GB free, 0.10 up to 1,000 GB, 0.05 above.
func tierPrices() Prices {
	p := DefaultPrices()
	p.Currency = "EUR"
	p.EgressTiers = []Tier{{UpToGB: 100, PricePerGB: 0}, {UpToGB: 1000, PricePerGB: 0.1}, {PricePerGB: 0.05}}
	p.InstanceHourlyPrice = 0.5
	p.Instances = 2
	p.CapacityDevices = 5000
	return p
}

func TestTieredEgressCost(t *testing.T) {
	p := tierPrices()
	const gb = BytesPerGB
	tests := []struct {
		name  string
		bytes float64
		want  float64
	}{
		{"nothing", 0, 0},
		{"negative", -5 * gb, 0},
		{"NaN", math.NaN(), 0},
		{"within the free tier", 50 * gb, 0},
		{"exactly the free tier", 100 * gb, 0},
		{"one byte over the free tier", 100*gb + 1, 0.1 / gb},
		{"inside the second tier", 600 * gb, 500 * 0.1},
		{"exactly the end of the second tier", 1000 * gb, 900 * 0.1},
		{"one GB into the last tier", 1001 * gb, 90 + 0.05},
		{"deep in the unbounded tier", 11000 * gb, 90 + 10000*0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNear(t, "cost", p.TieredEgressCost(tt.bytes), tt.want)
		})
	}
}

func TestTieredEgressCostFlatPrice(t *testing.T) {
	p := Prices{EgressTiers: []Tier{{PricePerGB: 0.08}}}
	checkNear(t, "2.5 TB at a flat 0.08", p.TieredEgressCost(2.5e12), 2500*0.08)
}

func TestFlatPricePerGB(t *testing.T) {
	tests := []struct {
		name  string
		tiers []Tier
		want  float64
	}{
		{"a free allowance is skipped", []Tier{{100, 0}, {1000, 0.1}, {0, 0.05}}, 0.1},
		{"no free tier: the first tier", []Tier{{1000, 0.12}, {0, 0.05}}, 0.12},
		{"all free", []Tier{{0, 0}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Prices{EgressTiers: tt.tiers}).FlatPricePerGB(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestModelFunctions(t *testing.T) {
	p := tierPrices()
	checkNear(t, "ComputeCost(3)", p.ComputeCost(3), 3*0.5*720)
	checkNear(t, "ProjectMonthlyEgress(1e6)", ProjectMonthlyEgress(1e6), 1e6*30*24*3600)
	// Two instances of 2,592 GB each: the service moves 5,184 GB, which costs
	// 90 + 4,184 × 0.05 = 299.2; this instance's share is half.
	checkNear(t, "InstanceEgressCost", p.InstanceEgressCost(2592e9), (90+4184*0.05)/2)
	one := p
	one.Instances = 1
	checkNear(t, "InstanceEgressCost with one instance is the tiered cost", one.InstanceEgressCost(2592e9), one.TieredEgressCost(2592e9))
	if got, ok := PerClientMonthly(3e9, 30); !ok || got != 1e8 {
		t.Errorf("PerClientMonthly(3e9, 30): got %v, %v, want 1e8, true", got, ok)
	}
	if _, ok := PerClientMonthly(3e9, 0); ok {
		t.Errorf("PerClientMonthly with no device: got ok, want not ok")
	}
	if Month.Hours() != 720 {
		t.Errorf("Month: got %v h, want 720 h", Month.Hours())
	}
}

func TestPlanInstances(t *testing.T) {
	p := tierPrices() // capacity 5,000, at least 2 instances
	tests := []struct {
		name     string
		devices  int64
		needed   int64
		inst     int
		fits     bool
		services int64
	}{
		{"no device still needs the configured instances", 0, 2, 2, true, 1},
		{"fewer devices than the minimum serves", 3000, 2, 2, true, 1},
		{"exactly three instances' worth", 15000, 3, 3, true, 1},
		{"one device more needs another instance", 15001, 4, 4, true, 1},
		{"exactly sixteen instances", 80000, 16, 16, true, 1},
		{"sixteen are not enough", 80001, 17, 16, false, 2},
		{"far too many", 1_000_000, 200, 16, false, 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Plan(tt.devices, 1e8, 3e8, p)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if plan.InstancesNeeded != tt.needed || plan.Instances != tt.inst || plan.Fits != tt.fits || plan.Services != tt.services {
				t.Errorf("got needed %d, instances %d, fits %v, services %d; want %d, %d, %v, %d",
					plan.InstancesNeeded, plan.Instances, plan.Fits, plan.Services, tt.needed, tt.inst, tt.fits, tt.services)
			}
			checkNear(t, "compute is priced for every needed instance", plan.Low.Compute, float64(tt.needed)*0.5*720)
		})
	}
}

func TestPlanCosts(t *testing.T) {
	p := tierPrices()
	plan, err := Plan(20000, 1e8, 3e8, p)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	// 20,000 devices × 100 MB = 2,000 GB: 90 + 1,000 × 0.05 = 140.
	// 20,000 devices × 300 MB = 6,000 GB: 90 + 5,000 × 0.05 = 340.
	// 4 instances × 0.5 × 720 = 1,440.
	checkNear(t, "low egress bytes", plan.Low.MonthlyEgressBytes, 2000e9)
	checkNear(t, "high egress bytes", plan.High.MonthlyEgressBytes, 6000e9)
	checkNear(t, "low egress cost", plan.Low.Egress, 140)
	checkNear(t, "high egress cost", plan.High.Egress, 340)
	checkNear(t, "compute", plan.High.Compute, 1440)
	checkNear(t, "low total", plan.Low.Total, 1580)
	checkNear(t, "high total", plan.High.Total, 1780)
	if plan.Instances != 4 || plan.Currency != "EUR" || plan.PricePerGB != 0.1 {
		t.Errorf("got instances %d, currency %q, price %v; want 4, EUR, 0.1", plan.Instances, plan.Currency, plan.PricePerGB)
	}
}

func TestPlanRefuses(t *testing.T) {
	bad := tierPrices()
	bad.Instances = 0
	tests := []struct {
		name      string
		devices   int64
		low, high float64
		prices    Prices
	}{
		{"negative devices", -1, 1, 2, tierPrices()},
		{"too many devices", MaxPlanDevices + 1, 1, 2, tierPrices()},
		{"low above high", 10, 3, 2, tierPrices()},
		{"NaN bytes", 10, math.NaN(), 2, tierPrices()},
		{"infinite bytes", 10, 1, math.Inf(1), tierPrices()},
		{"bad prices", 10, 1, 2, bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Plan(tt.devices, tt.low, tt.high, tt.prices); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}
