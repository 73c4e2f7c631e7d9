package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/cmg-gateway/cmg/appliance/analyze"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/configfile"
)

func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/cmg/connector.yaml", "the connector configuration `file` to analyze")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each instance's session (TLS, hello, role probes)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: cmg analyze -config connector.yaml [-timeout D] [-json]

Checks, from this host and with the connector's configuration, every step to each
gateway instance: DNS, TCP to each tunnel port, the proxy, TLS (the certificate
seen and why it is or is not trusted), whether the gateway accepts the connector's
certificate, the hello, and a round trip to every role through the gateway.
Prints a pass/fail table with the fix for each failure; exits 1 on any failure.
A running connector of the same name is not disturbed.

flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	cfg := connector.DefaultConfig()
	if err := configfile.Load(*path, &cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	rep, err := analyze.Run(ctx, cfg, analyze.Options{Timeout: *timeout})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		writeReport(stdout, rep)
	}
	if rep.Failed() {
		return 1
	}
	return 0
}

// writeReport prints the report as a table, each failure followed by its fix.
func writeReport(w io.Writer, rep *analyze.Report) {
	fmt.Fprintf(w, "connector %s/%s → gateway %s\n\n", rep.Site, rep.Connector, rep.Host)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tCHECK\tRESULT\tDETAIL")
	failed := 0
	for _, c := range rep.Checks {
		inst := "all"
		if c.Instance >= 0 {
			inst = strconv.Itoa(c.Instance)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", inst, c.Name, c.Result, c.Detail)
		if c.Result == analyze.Fail {
			failed++
			fmt.Fprintf(tw, "\t\t\t  fix: %s\n", c.Fix)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d checks, %d failed\n", len(rep.Checks), failed)
}
