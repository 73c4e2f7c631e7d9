// Command cmg is the one binary of the cloud management gateway: the gateway, the
// connector, the demo, the dev PKI, tokens, policies, the cost planner and the load
// tester are its subcommands. main only parses flags and wires packages together.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand. run gets the arguments after the command name and
// returns the process exit code; ctx is cancelled on SIGINT or SIGTERM.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the table of subcommands. Each lives in its own file.
var commands = map[string]command{
	"gateway":     {"run a gateway instance", runGateway},
	"connector":   {"run a connector", runConnector},
	"analyze":     {"connection analyzer: DNS, TCP, TLS, auth, proxy, tunnel and roles per instance; exit 1 on any failure", runAnalyze},
	"demo":        {"run the embedded demo (demo init writes its files)", runDemo},
	"pki":         {"a small dev PKI: init, issue, revoke", runPKI},
	"loadtest":    {"the device simulator; loadtest roles runs the simulated roles", runLoadtest},
	"cost":        {"capacity and cost planner: devices and profile in, monthly egress, cost and instances out", runCost},
	"healthcheck": {"exit 0 when the admin /healthz answers 200", runHealthcheck},
	"policy":      {"check or explain a policy file", runPolicy},
	"token":       {"site-issued tokens: keygen, issue", runToken},
	"version":     {"print version, commit and Go version", runVersion},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cmg: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cmg <command> [flags]   (cmg <command> -h for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
}
