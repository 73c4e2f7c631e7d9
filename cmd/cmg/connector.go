package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/metrics"
	"github.com/cmg-gateway/cmg/profiling"
)

func runConnector(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/cmg/connector.yaml", "the connector configuration `file`")
	check := fs.Bool("check", false, "load and check the configuration and certificates, then exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmg connector -config connector.yaml [-check]\n\nRuns a connector until SIGINT or SIGTERM (then drains its streams); SIGHUP re-reads its certificate.\n\nflags:")
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
	log, flushLog := newLogger(stderr, cfg.Log.Level)
	defer flushLog()
	c, err := connector.New(cfg, connector.Options{Logger: log, Registry: metrics.NewRegistry("connector")})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return 0
	}
	otelErrorsTo(log)
	defer startProfiling(ctx, cfg.Profiling, profiling.Tags{Instance: cfg.Name, Role: "connector"}, log)()
	stopHUP := onSIGHUP(ctx, func() { c.Reload(*path) })
	defer stopHUP()
	if err := c.Run(ctx); err != nil {
		log.Error("connector stopped with an error", "err", err)
		return 1
	}
	return 0
}
