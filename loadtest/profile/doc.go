// Package profile holds the load tester's traffic profiles: what a simulated
// device sends, how often and how large, and the connection habits it sends it
// with. The built-in profiles, default and dynamic, are the calibrated model of
// shared/reference/client-traffic.md section 6 with every message class,
// interval and size a field; a profile file (YAML) overrides any of them.
//
// A profile is also a cost model: Model prices a device's month, both legs
// (bytes to the device and bytes to the site), under either habit set, and
// Profile implements metrics/cost.TrafficModel so that `cmg cost` plans with
// the same profiles the load tester runs. loadtest/README.md says where every
// number comes from.
package profile
