package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// MB formats bytes in decimal megabytes.
func MB(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

func pct(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f %%", *v*100)
}

// WriteText writes the report for a person at a terminal.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "cmg loadtest: %d devices, profile %s, %s habits, %s auth (%s)\n", r.Devices, r.Profile, r.Habits, r.Auth, r.Identity)
	fmt.Fprintf(w, "  ran %.0f s wall = %s simulated (time scale %g)", r.WallSeconds, simSpan(r.SimulatedSeconds), r.TimeScale)
	if r.Shard != "" {
		fmt.Fprintf(w, ", shard %s", r.Shard)
	}
	fmt.Fprintln(w)
	if r.ServerChain != "" {
		fmt.Fprintf(w, "  server chain: %s\n", r.ServerChain)
	}
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  target %s: %d connections, %d connect failures\n", t.URL, t.Dials, t.Failures)
	}
	fmt.Fprintf(w, "\nthroughput: %d exchanges, %.1f/s; %d errors; %d connections opened (%d resumed)\n\n",
		r.Throughput.Exchanges, r.Throughput.PerSecond, r.Throughput.Errors, r.Connections.Opened, r.Connections.Resumed)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "latency (ms)\tcount\terrors\tp50\tp95\tp99\tmax\t\n")
	for _, role := range sortedKeys(r.Roles) {
		s := r.Roles[role]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", role, s.Count, s.Errors, s.P50MS, s.P95MS, s.P99MS, s.MaxMS)
	}
	tw.Flush()
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\nerrors by reason:\n")
		for _, k := range sortedKeys(r.Errors) {
			fmt.Fprintf(w, "  %-28s %d\n", k, r.Errors[k])
		}
	}

	e := r.Egress
	fmt.Fprintf(w, "\negress per device per month (both legs, measured by the load tester):\n")
	fmt.Fprintf(w, "  device leg (device sockets, TLS included)  %s   model %s\n", MB(e.MonthlyDevice), MB(e.ModelDevice))
	if e.MonthlySite != nil {
		fmt.Fprintf(w, "  site leg (bytes the simulated site got)    %s   model %s\n", MB(*e.MonthlySite), MB(e.ModelSite))
		fmt.Fprintf(w, "  total                                      %s   model %s (%s)", MB(*e.MonthlyTotal), MB(e.ModelTotal), pct(e.VsModel))
		if e.Reference > 0 {
			fmt.Fprintf(w, ", reference %s (%s)", MB(e.Reference), pct(e.VsReference))
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "  site leg: not measured (give -site URL of the simulated roles)\n")
	}
	if e.ModelAll != e.ModelTotal {
		fmt.Fprintf(w, "  the model of every class, those not simulated yet included: %s\n", MB(e.ModelAll))
	}
	if g := r.Gateway; g != nil {
		fmt.Fprintf(w, "\nthe gateway's own counters over the run:\n")
		line := func(name string, v *float64, mine string, ratio *float64) {
			if v == nil {
				fmt.Fprintf(w, "  %-58s not exported\n", name)
				return
			}
			fmt.Fprintf(w, "  %-58s %s   (%s, ratio %s)\n", name, MB(*v), mine, ratioText(ratio))
		}
		line(`cmg_gateway_wire_egress_bytes_total{listener="client"}`, g.WireEgressClient, "device leg "+MB(float64(e.DeviceLeg)), g.DeviceVsWire)
		site := "site leg n/a"
		if e.SiteLeg != nil {
			site = "site leg " + MB(float64(*e.SiteLeg))
		}
		line(`cmg_gateway_egress_bytes_total{peer="connector"}`, g.EgressConnector, site, g.SiteVsConnector)
		proj := "projection n/a"
		if e.MonthlyTotal != nil {
			proj = "projection " + MB(*e.MonthlyTotal)
		}
		line("cmg_cost_egress_bytes_per_client_monthly", g.PerClientMonthly, proj, g.ProjectionVsCost)
	}

	fmt.Fprintf(w, "\nby class (device leg per device per month vs the model):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "class\texchanges\terrors\tp99 ms\tnew conns\tdevice leg\tmodel\t\n")
	for _, c := range r.Classes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%d\t%s\t%s\t\n", c.Name, c.Count, c.Errors, c.P99MS, c.NewConns, MB(c.MonthlyRead), MB(c.ModelToDevice))
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func ratioText(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", *v)
}

func simSpan(s float64) string {
	switch {
	case s >= 86400:
		return fmt.Sprintf("%.2f days", s/86400)
	case s >= 3600:
		return fmt.Sprintf("%.2f h", s/3600)
	}
	return fmt.Sprintf("%.0f s", s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
