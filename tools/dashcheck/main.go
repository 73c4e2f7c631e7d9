// Command dashcheck validates Grafana dashboard JSON files against Grafana's own
// dashboard schema, as generated from Grafana's CUE kinds into
// grafana-foundation-sdk/go (dashboard schema v1, the JSON model Grafana's file
// provisioning loads). It uses the SDK's strict decoder, which reports every
// unknown field, wrong type and missing required field, including each panel's
// options and field config for its panel type and each Prometheus query.
//
// Usage: dashcheck FILE...   (exit 1 and one line per problem when any is found)
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	bad := false
	for _, path := range os.Args[1:] {
		for _, p := range check(path) {
			bad = true
			fmt.Printf("%s: %s\n", path, p)
		}
	}
	if bad {
		os.Exit(1)
	}
}

// check returns the problems of one file (none when it validates).
func check(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var d dashboard.Dashboard
	err = d.UnmarshalJSONStrict(data)
	// On success the decoder returns a typed-nil cog.BuildErrors: test its length.
	var berrs cog.BuildErrors
	switch {
	case err == nil:
		return nil
	case errors.As(err, &berrs):
		var out []string
		for _, e := range berrs {
			out = append(out, e.Error())
		}
		return out
	default:
		return []string{err.Error()}
	}
}
