package cost

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// The units of the model (see the package comment).
const (
	BytesPerGB    = 1e9
	BytesPerMB    = 1e6
	HoursPerMonth = 720
	// Month is 30 days.
	Month = HoursPerMonth * time.Hour
)

// The reference band of the original product's planning guidance: about 100 MB
// (default client settings) to 300 MB (aggressive settings) of egress per
// internet client per month. Exported as
// cmg_cost_model_egress_bytes_per_client_monthly{bound="low"|"high"}.
const (
	ModelLowBytesPerClientMonthly  = 100 * BytesPerMB
	ModelHighBytesPerClientMonthly = 300 * BytesPerMB
)

// MaxPlanDevices bounds what Plan accepts: far more than any service, small
// enough that no arithmetic on it overflows.
const MaxPlanDevices = 1_000_000_000_000

// TieredEgressCost is the price of a month's egress of the given bytes under the
// tiered price (each GB priced by the tier its position in the month's volume
// falls in). Negative or NaN bytes cost 0.
func (p Prices) TieredEgressCost(bytes float64) float64 {
	if !(bytes > 0) {
		return 0
	}
	gb := bytes / BytesPerGB
	cost, start := 0.0, 0.0
	for i, t := range p.EgressTiers {
		end := t.UpToGB
		if i == len(p.EgressTiers)-1 || end <= start {
			end = math.Inf(1)
		}
		if gb <= start {
			break
		}
		cost += (math.Min(gb, end) - start) * t.PricePerGB
		start = end
	}
	return cost
}

// ComputeCost is what the given number of instances cost in a month:
// hourly price × instances × 720 h.
func (p Prices) ComputeCost(instances int64) float64 {
	return p.InstanceHourlyPrice * float64(instances) * HoursPerMonth
}

// InstanceEgressCost is one instance's share of the service's tiered egress bill,
// given that instance's own projected monthly egress. The load balancer spreads
// devices evenly over the p.Instances instances, so the service's volume is about
// p.Instances times this instance's; the share is the tiered price of that volume
// divided by p.Instances. Summed over instances (as the recording rules do) it is
// the service's tiered bill when the spread is even, and with one instance it is
// exact.
func (p Prices) InstanceEgressCost(projectedBytes float64) float64 {
	n := float64(max(p.Instances, 1))
	return p.TieredEgressCost(projectedBytes*n) / n
}

// ProjectMonthlyEgress is the month's egress at the given rate: rate × 30 days.
func ProjectMonthlyEgress(bytesPerSecond float64) float64 {
	return bytesPerSecond * Month.Seconds()
}

// PerClientMonthly is a month's egress per device: projected over the distinct
// devices seen. With no device it is undefined and ok is false.
func PerClientMonthly(projectedBytes float64, devices uint64) (perClient float64, ok bool) {
	if devices == 0 {
		return 0, false
	}
	return projectedBytes / float64(devices), true
}

// Estimate is a month of one service at one traffic bound.
type Estimate struct {
	// MonthlyEgressBytes is the service's egress in a month.
	MonthlyEgressBytes float64 `json:"monthly_egress_bytes"`
	// Egress, Compute and Total are the month's cost by component, in the
	// plan's currency.
	Egress  float64 `json:"egress"`
	Compute float64 `json:"compute"`
	Total   float64 `json:"total"`
}

// CapacityPlan is what `cmg cost` prints: the service a number of devices needs
// and what it costs a month at the low and high bound of the traffic profile.
type CapacityPlan struct {
	Devices int64 `json:"devices"`
	// PerDeviceMonthlyBytesLow and High are the traffic profile's bounds.
	PerDeviceMonthlyBytesLow  float64 `json:"per_device_monthly_bytes_low"`
	PerDeviceMonthlyBytesHigh float64 `json:"per_device_monthly_bytes_high"`
	// CapacityDevices is the devices one instance serves.
	CapacityDevices int `json:"capacity_devices_per_instance"`
	// InstancesNeeded is ceil(devices / capacity), at least the configured
	// instance count and at least 1. It may exceed 16.
	InstancesNeeded int64 `json:"instances_needed"`
	// Instances is the instance count of the service: InstancesNeeded, at
	// most 16.
	Instances int `json:"instances"`
	// Fits is false when 16 instances cannot serve the devices: they need
	// Services services (ceil(InstancesNeeded / 16)), and compute is priced for
	// all InstancesNeeded instances.
	Fits     bool   `json:"fits"`
	Services int64  `json:"services"`
	Currency string `json:"currency"`
	// PricePerGB is the flat price (FlatPricePerGB), for reference; egress is
	// priced by tier.
	PricePerGB float64  `json:"price_per_gb"`
	Low        Estimate `json:"low"`
	High       Estimate `json:"high"`
}

// Plan plans a service for the given devices whose monthly egress per device is
// between low and high bytes, under prices p.
func Plan(devices int64, low, high float64, p Prices) (CapacityPlan, error) {
	if err := p.Validate(); err != nil {
		return CapacityPlan{}, err
	}
	if devices < 0 || devices > MaxPlanDevices {
		return CapacityPlan{}, fmt.Errorf("cost: devices must be 0 to %d, not %d", int64(MaxPlanDevices), devices)
	}
	if !finiteNonNegative(low) || !finiteNonNegative(high) || low > high {
		return CapacityPlan{}, errors.New("cost: per-device monthly bytes must be finite, 0 or more, low at most high")
	}
	capacity := int64(p.CapacityDevices)
	needed := max((devices+capacity-1)/capacity, int64(p.Instances), 1)
	plan := CapacityPlan{
		Devices:                   devices,
		PerDeviceMonthlyBytesLow:  low,
		PerDeviceMonthlyBytesHigh: high,
		CapacityDevices:           p.CapacityDevices,
		InstancesNeeded:           needed,
		Instances:                 int(min(needed, MaxInstances)),
		Fits:                      needed <= MaxInstances,
		Services:                  (needed + MaxInstances - 1) / MaxInstances,
		Currency:                  p.Currency,
		PricePerGB:                p.FlatPricePerGB(),
	}
	compute := p.ComputeCost(needed)
	plan.Low = estimate(float64(devices)*low, compute, p)
	plan.High = estimate(float64(devices)*high, compute, p)
	return plan, nil
}

func estimate(egressBytes, compute float64, p Prices) Estimate {
	egress := p.TieredEgressCost(egressBytes)
	return Estimate{MonthlyEgressBytes: egressBytes, Egress: egress, Compute: compute, Total: egress + compute}
}
