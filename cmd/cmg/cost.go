package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/metrics/cost"
)

// trafficModel is a resolved -profile: a name, a note and the model.
type trafficModel struct {
	name, note string
	model      cost.TrafficModel
}

// lookupTrafficModel resolves -profile: a load tester profile (a built-in
// name, or a profile file `cmg loadtest -profile` takes), whose low bound is a
// device's month with cmg's connection habits and high bound with the
// original product's; or else a cost profile file (bounds or classes).
func lookupTrafficModel(nameOrPath string) (trafficModel, error) {
	p, err := profile.Lookup(nameOrPath)
	if err == nil {
		return trafficModel{name: p.Name, model: p, note: "low: cmg's habits (keep-alive, TLS resumption, one notification channel); " +
			"high: the original product's (a new TLS connection per exchange, notification renewals every 15 min); " + p.Note}, nil
	}
	if _, statErr := os.Stat(nameOrPath); statErr != nil {
		return trafficModel{}, err
	}
	c, cerr := cost.LookupProfile(nameOrPath)
	if cerr != nil {
		return trafficModel{}, fmt.Errorf("%s is neither a load tester profile (%v) nor a cost profile (%w)", nameOrPath, err, cerr)
	}
	return trafficModel{name: c.Name, note: c.Note, model: c}, nil
}

// runCost is `cmg cost`: the capacity and cost planner. Devices and a traffic
// profile in; the monthly egress range, the monthly cost by component and the
// instance count out, from the same model the gateway's cost metrics use.
func runCost(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	devices := fs.Int64("devices", 0, "number of internet `devices` (required)")
	profileName := fs.String("profile", "default", "traffic profile: "+strings.Join(profile.Builtins(), ", ")+", or a profile `FILE`")
	pricesFile := fs.String("prices", "", "prices `FILE` (YAML; keys left out keep the built-in example prices)")
	capacity := fs.Int("capacity", 0, "devices one instance serves, `N` (overrides capacity_devices of the prices)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, costUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 || *devices <= 0 || *capacity < 0 {
		fmt.Fprintln(stderr, "cost: give -devices N (N > 0), an optional -capacity N > 0, and no arguments")
		fs.Usage()
		return 2
	}
	prices, err := loadPrices(*pricesFile, *capacity)
	if err != nil {
		fmt.Fprintf(stderr, "cost: %v\n", err)
		return 1
	}
	prof, err := lookupTrafficModel(*profileName)
	if err != nil {
		fmt.Fprintf(stderr, "cost: %v\n", err)
		return 1
	}
	low, high := prof.model.PerDeviceMonthlyBytes()
	plan, err := cost.Plan(*devices, low, high, prices)
	if err != nil {
		fmt.Fprintf(stderr, "cost: %v\n", err)
		return 1
	}
	if *asJSON {
		return printPlanJSON(stdout, stderr, prof, plan)
	}
	printPlan(stdout, prof, prices, plan)
	return 0
}

const costUsage = `usage: cmg cost -devices N [-profile default|dynamic|FILE] [-prices FILE] [-capacity N] [-json]

Plans a gateway service for N devices: the monthly egress range of the traffic
profile (both legs: to the devices and to the site), the monthly cost by
component (tiered egress, compute) at the low and the high bound, and the
instance count (ceil(N / capacity), at least the prices' instances, at most 16).
A month is 30 days (720 h); GB = 10^9 bytes, MB = 10^6 bytes.

The built-in profiles are the load tester's (cmg loadtest -profile): the low bound
is a device's month with cmg's connection habits, the high bound with the original
product's. A profile FILE is a load tester profile (see loadtest/README.md), or
YAML giving the bounds directly:
  name: branch-offices
  per_device_monthly: {low: 80MB, high: 120MB}
or traffic classes (exchanges per device per month x bytes per exchange):
  name: my-site
  classes:
    - {name: machine policy poll, per_month: 720, bytes: 17.4KB}
    - {name: state messages, per_month: 1440, per_month_high: 6480, bytes: 15.7KB}

A prices FILE is YAML:
  currency: USD
  egress_tiers:                       # per GB, by monthly volume
    - {up_to_gb: 100, price_per_gb: 0}
    - {up_to_gb: 10000, price_per_gb: 0.087}
    - {price_per_gb: 0.05}            # the last tier is unbounded
  instance_hourly_price: 0.091
  instances: 2                        # at least this many (high availability)
  capacity_devices: 6000

flags:
`

// loadPrices returns the example prices, overlaid with the file when one is
// given, and with the capacity when it is not 0.
func loadPrices(path string, capacity int) (cost.Prices, error) {
	p := cost.DefaultPrices()
	if path != "" {
		if err := configfile.Load(path, &p); err != nil {
			return p, err
		}
	}
	if capacity > 0 {
		p.CapacityDevices = capacity
	}
	return p, p.Validate()
}

func printPlanJSON(stdout, stderr io.Writer, prof trafficModel, plan cost.CapacityPlan) int {
	out := struct {
		Profile string `json:"profile"`
		cost.CapacityPlan
	}{prof.name, plan}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "cost: %v\n", err)
		return 1
	}
	return 0
}

func printPlan(w io.Writer, prof trafficModel, prices cost.Prices, plan cost.CapacityPlan) {
	fmt.Fprintf(w, "%d devices, profile %s: %s to %s per device per month\n",
		plan.Devices, prof.name, formatBytes(plan.PerDeviceMonthlyBytesLow), formatBytes(plan.PerDeviceMonthlyBytesHigh))
	if prof.note != "" {
		fmt.Fprintf(w, "  (%s)\n", prof.note)
	}
	fmt.Fprintf(w, "instances: %d (%d devices per instance)\n", plan.Instances, plan.CapacityDevices)
	if !plan.Fits {
		fmt.Fprintf(w, "warning: 16 instances serve at most %d devices; %d devices need %d instances: split them over %d services (compute below is priced for all %d)\n",
			cost.MaxInstances*plan.CapacityDevices, plan.Devices, plan.InstancesNeeded, plan.Services, plan.InstancesNeeded)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	money := func(x float64) string { return fmt.Sprintf("%s %.2f", plan.Currency, x) }
	fmt.Fprintf(tw, "per month\tlow\thigh\t\n")
	fmt.Fprintf(tw, "egress\t%s\t%s\t\n", formatBytes(plan.Low.MonthlyEgressBytes), formatBytes(plan.High.MonthlyEgressBytes))
	fmt.Fprintf(tw, "egress cost\t%s\t%s\t\n", money(plan.Low.Egress), money(plan.High.Egress))
	fmt.Fprintf(tw, "compute cost\t%s\t%s\t\n", money(plan.Low.Compute), money(plan.High.Compute))
	fmt.Fprintf(tw, "total\t%s\t%s\t\n", money(plan.Low.Total), money(plan.High.Total))
	tw.Flush()
	fmt.Fprintf(w, "\nprices: egress tiered per GB (first priced tier %s %g), instance %s %g per hour x 720 h\n",
		plan.Currency, prices.FlatPricePerGB(), plan.Currency, prices.InstanceHourlyPrice)
}

// formatBytes prints decimal units (MB = 10^6 bytes), four significant digits.
func formatBytes(b float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for b >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	return fmt.Sprintf("%.4g %s", b, units[i])
}
