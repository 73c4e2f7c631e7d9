package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", healthcheckDefaultURL(), "the admin `URL` of /healthz (default from $CMG_HEALTHCHECK_URL when set)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this `duration`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmg healthcheck [-url URL] [-timeout D]\n\nExits 0 when the admin /healthz answers 200 (for container health checks), 1 otherwise.\nA container image's HEALTHCHECK takes no flags per container: set CMG_HEALTHCHECK_URL\n(a connector's admin listener is 127.0.0.1:9200 by default).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s answered %s\n", *url, resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// healthcheckDefaultURL is $CMG_HEALTHCHECK_URL, or the gateway's default admin
// listener's /healthz.
func healthcheckDefaultURL() string {
	if u := os.Getenv("CMG_HEALTHCHECK_URL"); u != "" {
		return u
	}
	return "http://127.0.0.1:9100/healthz"
}
