package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/metrics"
	"github.com/cmg-gateway/cmg/profiling"
)

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/cmg/gateway.yaml", "the gateway configuration `file`")
	check := fs.Bool("check", false, "load and check the configuration and certificates, then exit")
	fromHostname := fs.Bool("instance-from-hostname", false, "take instance from the host name's trailing -N (a StatefulSet pod's ordinal), overriding the file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmg gateway -config gateway.yaml [-check] [-instance-from-hostname]\n\nRuns one gateway instance until SIGINT or SIGTERM (then drains); SIGHUP reloads.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	cfg := gateway.DefaultConfig()
	if err := configfile.Load(*path, &cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *fromHostname {
		if err := instanceFromHostnameOS(&cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	log, flushLog := newLogger(stderr, cfg.Log.Level)
	defer flushLog()
	g, err := gateway.New(cfg, gateway.Options{Logger: log, Registry: metrics.NewRegistry("gateway")})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return 0
	}
	stopHUP := onSIGHUP(ctx, func() { g.Reload(*path) })
	defer stopHUP()
	otelErrorsTo(log)
	defer startProfiling(ctx, cfg.Profiling, profiling.Tags{Instance: strconv.Itoa(cfg.Instance), Role: "gateway"}, log)()
	if err := g.Run(ctx); err != nil {
		log.Error("gateway stopped with an error", "err", err)
		return 1
	}
	return 0
}
