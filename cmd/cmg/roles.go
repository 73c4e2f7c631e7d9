package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// runRoles is `cmg loadtest roles`: the simulated management point and software
// update point on their own listener, until interrupted.
func runRoles(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest roles", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "listen on this `address` (host:port)")
	config := fs.String("config", "", "optional YAML `file` of roles.Config (seed, site, tls, sizes)")
	siteKey := fs.String("site-key", "", "make CCM_STS issue site device tokens signed by this site key `file` (cmg token keygen; cmg demo init writes pki/site-key.pem), for the site code of the config")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmg loadtest roles [-listen ADDR] [-config FILE]\n\n"+
			"Runs the simulated management point (under /mp/) and software update point (under /sup/)\n"+
			"until interrupted. GET /roles/stats shows requests and bytes per role.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest roles: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := roles.DefaultConfig()
	if *config != "" {
		if err := configfile.Load(*config, &cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	var opts []roles.Option
	if *siteKey != "" {
		issuer, err := roles.LoadSiteTokenIssuer(*siteKey, cfg.Site.Code)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest roles: %v\n", err)
			return 1
		}
		opts = append(opts, roles.WithTokenIssuer(issuer))
		key, err := sitetoken.LoadKey(*siteKey)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest roles: %v\n", err)
			return 1
		}
		iss, err := sitetoken.NewIssuer(key, "", cfg.Site.Code)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest roles: %v\n", err)
			return 1
		}
		opts = append(opts, roles.WithContentTokens(iss))
	}
	srv, err := roles.New(cfg, logger, opts...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest roles: %v\n", err)
		return 1
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	fmt.Fprintf(stdout, "management point:      %s/mp\nsoftware update point: %s/sup\nstats:                 %s/roles/stats\n", base, base, base)
	if err := srv.Run(ctx, ln); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
