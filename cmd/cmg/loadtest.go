package main

import (
	"context"
	"fmt"
	"io"
)

// runLoadtest dispatches `cmg loadtest roles` (the simulated site roles); the
// device simulator itself is the load tester's issue.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "roles" {
		return runRoles(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: cmg loadtest roles -listen ADDR\n\nroles  run the simulated management point and software update point")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		return 0
	}
	return 2
}
