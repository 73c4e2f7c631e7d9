package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/cmg-gateway/cmg/version"
)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmg version\n\nPrints the version, the commit and the Go version of this binary.")
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	fmt.Fprintln(stdout, version.String())
	return 0
}
