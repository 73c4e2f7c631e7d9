package cost

import (
	"math"
	"regexp"
	"strconv"

	"github.com/cmg-gateway/cmg/configfile"
)

// MaxInstances is the most gateway instances one service has (DESIGN section 1).
const MaxInstances = 16

// Prices is what the bill of a gateway service depends on. It is the `prices`
// block of the gateway's `cost` section and the whole document that
// `cmg cost -prices FILE` reads.
type Prices struct {
	// Currency is the ISO 4217 code the prices are in ("USD"). It is the
	// `currency` label of the cost metrics.
	Currency string `yaml:"currency"`
	// EgressTiers is the price of internet egress per GB (10^9 bytes) by monthly
	// volume, cheapest volume first. Each tier covers the volume from the end of
	// the previous tier (0 for the first) up to its UpToGB; the last tier leaves
	// UpToGB out (or 0) and covers everything above. A free allowance is a first
	// tier with price 0.
	EgressTiers []Tier `yaml:"egress_tiers"`
	// InstanceHourlyPrice is what one gateway instance (VM or pod) costs per hour.
	InstanceHourlyPrice float64 `yaml:"instance_hourly_price"`
	// Instances is the service's instance count, 1 to 16. A gateway uses it to
	// take its share of the tiered egress bill; `cmg cost` plans at least this
	// many (2 for high availability) and more when the devices need them.
	Instances int `yaml:"instances"`
	// CapacityDevices is how many devices one instance serves
	// (cmg_gateway_capacity_devices). `cmg cost -capacity N` overrides it.
	CapacityDevices int `yaml:"capacity_devices"`
}

// Tier is one step of the tiered egress price.
type Tier struct {
	// UpToGB is the monthly volume in GB at which the tier ends; 0 on the last
	// tier means unbounded.
	UpToGB float64 `yaml:"up_to_gb"`
	// PricePerGB is the price of each GB within the tier.
	PricePerGB float64 `yaml:"price_per_gb"`
}

// DefaultPrices returns example prices with the shape of a large public cloud's
// list price for internet egress (first 100 GB a month free, then falling with
// volume) and a small general-purpose VM (2 vCPU, 4 GiB). They are a starting
// point: replace them with your own agreement's.
func DefaultPrices() Prices {
	return Prices{
		Currency: "USD",
		EgressTiers: []Tier{
			{UpToGB: 100, PricePerGB: 0},
			{UpToGB: 10_000, PricePerGB: 0.087},
			{UpToGB: 50_000, PricePerGB: 0.083},
			{UpToGB: 150_000, PricePerGB: 0.07},
			{PricePerGB: 0.05},
		},
		InstanceHourlyPrice: 0.091,
		Instances:           1,
		CapacityDevices:     6000,
	}
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate reports every problem of p at once as a *configfile.Problems.
func (p Prices) Validate() error {
	var ps configfile.Problems
	if !currencyCode.MatchString(p.Currency) {
		ps.Addf("currency", "must be an ISO 4217 code of three capital letters (USD, EUR), not %q", p.Currency)
	}
	validateTiers(&ps, p.EgressTiers)
	if !finiteNonNegative(p.InstanceHourlyPrice) {
		ps.Addf("instance_hourly_price", "must be a finite price of 0 or more, not %v", p.InstanceHourlyPrice)
	}
	if p.Instances < 1 || p.Instances > MaxInstances {
		ps.Addf("instances", "must be 1 to %d, not %d", MaxInstances, p.Instances)
	}
	if p.CapacityDevices < 1 {
		ps.Addf("capacity_devices", "must be 1 or more, not %d", p.CapacityDevices)
	}
	return ps.Err()
}

func validateTiers(ps *configfile.Problems, tiers []Tier) {
	if len(tiers) == 0 {
		ps.Addf("egress_tiers", "needs at least one tier (one unbounded tier is a flat price)")
		return
	}
	prev := 0.0
	for i, t := range tiers {
		path := "egress_tiers[" + strconv.Itoa(i) + "]"
		if !finiteNonNegative(t.PricePerGB) {
			ps.Addf(path+".price_per_gb", "must be a finite price of 0 or more, not %v", t.PricePerGB)
		}
		last := i == len(tiers)-1
		switch {
		case last && t.UpToGB != 0:
			ps.Addf(path+".up_to_gb", "the last tier is unbounded: leave up_to_gb out (it is %v)", t.UpToGB)
		case !last && !(t.UpToGB > prev && !math.IsInf(t.UpToGB, 0)):
			ps.Addf(path+".up_to_gb", "must be a finite volume above the previous tier's end (%v GB), not %v", prev, t.UpToGB)
		case !last:
			prev = t.UpToGB
		}
	}
}

func finiteNonNegative(x float64) bool { return x >= 0 && !math.IsInf(x, 0) }

// FlatPricePerGB is the price exported as cmg_cost_egress_price_per_gigabyte:
// the price of the first tier that has one. A free allowance is skipped, because
// a price of 0 tells an operator nothing about what the next GB costs; with no
// free tier it is simply the first tier's price.
func (p Prices) FlatPricePerGB() float64 {
	for _, t := range p.EgressTiers {
		if t.PricePerGB > 0 {
			return t.PricePerGB
		}
	}
	return 0
}
