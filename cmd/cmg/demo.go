package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/cmg-gateway/cmg/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "init" {
		return runDemoInit(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "cmg-demo", "the demo `directory` (created by demo init when missing)")
	base := fs.Int("port-base", demo.DefaultPortBase, "every demo port is this `base` plus a fixed offset")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: cmg demo [-dir DIR] [-port-base N]
       cmg demo init -dir DIR [-port-base N]

Runs a dev PKI, 2 gateway instances, 2 connectors and the simulated management
point and software update point on 127.0.0.1 in one process, prints the URLs and a
curl line, writes DIR/ready once every connector holds a session to every
instance, and runs until interrupted. Ports (base 8000): roles +80, devices
+443+i, gateway admin +1100+i, connector admin +1200+j, TCP-TLS tunnel +2140+i.

flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if err := demo.Run(ctx, demo.RunOptions{Dir: *dir, PortBase: *base, Out: stdout, LogLevel: *level}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func runDemoInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "cmg-demo", "the demo `directory`")
	base := fs.Int("port-base", demo.DefaultPortBase, "every demo port is this `base` plus a fixed offset")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmg demo init -dir DIR [-port-base N]\n\nWrites the dev PKI, one config per gateway instance and per connector, and DIR/demo.json,\nso that the demo also runs as separate processes (cmg gateway/connector -config, cmg loadtest roles).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	m, err := demo.Init(*dir, *base)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s/%s\n", m.Dir, demo.ManifestFile)
	return 0
}
