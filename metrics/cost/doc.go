// Package cost is cmg's cost model and the core of its capacity and cost planner
// (DESIGN section 11). The same functions price a running gateway instance, for
// its cmg_cost_* and cmg_gateway_clients_active metrics, and a planned service,
// for `cmg cost`, so the two can never disagree.
//
// Units, used everywhere in this package and in what it exports:
//
//   - A month is 30 days: 720 hours, 2,592,000 seconds.
//   - A gigabyte (GB) is 10^9 bytes and a megabyte (MB) 10^6 bytes. Prices are
//     per GB of that size. The reference figures (100 to 300 MB per client per
//     month, and the per-class sizes of the calibrated traffic model) are decimal
//     too. A cloud that bills per 2^30 bytes charges about 7 % less for the same
//     bytes than this package computes, so the model errs on the expensive side.
//   - Egress is both legs, as the original product counts it: bytes the gateway
//     sends to devices and bytes it sends to the site through the tunnels,
//     counted on the socket (TLS included).
//
// The parts:
//
//   - Prices (a YAML document: currency, tiered egress price, instance hourly
//     price, instance count, per-instance capacity) and the pure model functions
//     on it: TieredEgressCost, ComputeCost, ProjectMonthlyEgress,
//     PerClientMonthly, Plan.
//   - Profile: the per-device monthly egress of a traffic profile, built in
//     ("default", "dynamic") or read from a file.
//   - EgressRate: bytes per second over the last hour, fed from the hot path with
//     one atomic add.
//   - Devices: distinct devices over 1 h, 24 h and 30 d in bounded memory
//     (HyperLogLog sketches per time bucket, fed with a keyed hash of the device
//     identity), saved to and restored from a state file that holds no identity.
//   - Meter, which holds the last two for one gateway instance, and Collector,
//     which exports the gauges of DESIGN section 11 on an injected registry.
package cost
