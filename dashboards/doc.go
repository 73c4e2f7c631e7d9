// Package dashboards holds cmg's Grafana dashboards (grafana/), the Grafana
// provisioning files that load them (provisioning/), and the Prometheus recording
// and alert rules with their promtool unit tests (prometheus/). See README.md for
// what each dashboard shows and the runbook of each alert.
//
// The package has no Go API: its tests prove the files against the real tools
// and the real appliance. They validate each dashboard against Grafana's own
// dashboard schema, run promtool on the rules, check that every metric name and
// label the files use is one the appliance exports, and evaluate every panel's
// query with a real Prometheus scraping the demo while traffic runs through it.
package dashboards
