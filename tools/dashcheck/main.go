// Command dashcheck validates Grafana dashboard JSON files against Grafana's own
// dashboard schema, as generated from Grafana's CUE kinds into
// grafana-foundation-sdk/go (dashboard schema v1, the JSON model Grafana's file
// provisioning loads). It uses the SDK's strict decoder, which reports every
// unknown field, wrong type and missing required field, including each panel's
// options and field config for its panel type (of the types in panelTypes) and
// each Prometheus query.
//
// Usage: dashcheck FILE...   (exit 1 and one line per problem when any is found)
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/text"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// panelTypes are the panel types whose options and field config dashcheck
// checks. Only these are registered (all of the SDK's plugins would cost CI a
// minute more to compile), and a panel of another type is refused: add its
// variant here to use it.
var panelTypes = map[string]variants.PanelcfgConfig{
	"stat":       stat.VariantConfig(),
	"timeseries": timeseries.VariantConfig(),
	"table":      table.VariantConfig(),
	"text":       text.VariantConfig(),
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck FILE...")
		os.Exit(2)
	}
	rt := cog.NewRuntime()
	for _, v := range panelTypes {
		rt.RegisterPanelcfgVariant(v)
	}
	rt.RegisterDataqueryVariant(prometheus.VariantConfig())
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
	problems := unknownPanelTypes(data)
	var d dashboard.Dashboard
	err = d.UnmarshalJSONStrict(data)
	// On success the decoder returns a typed-nil cog.BuildErrors: test its length.
	var berrs cog.BuildErrors
	switch {
	case err == nil:
	case errors.As(err, &berrs):
		for _, e := range berrs {
			problems = append(problems, e.Error())
		}
	default:
		problems = append(problems, err.Error())
	}
	return problems
}

// unknownPanelTypes refuses panels (rows' panels included) of a type whose
// options dashcheck cannot check, and targets of a data source other than
// Prometheus.
func unknownPanelTypes(data []byte) []string {
	type panel struct {
		Type       string `json:"type"`
		Datasource *struct {
			Type string `json:"type"`
		} `json:"datasource"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if json.Unmarshal(data, &d) != nil {
		return nil // the strict decoder reports it
	}
	var out []string
	var walk func(path string, ps []panel)
	walk = func(path string, ps []panel) {
		for i, p := range ps {
			at := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := panelTypes[p.Type]; !ok && p.Type != "row" {
				out = append(out, fmt.Sprintf("%s.type: %q is not a panel type dashcheck checks (add its variant to panelTypes)", at, p.Type))
			}
			if p.Datasource != nil && p.Datasource.Type != "prometheus" && p.Type != "row" {
				out = append(out, fmt.Sprintf("%s.datasource.type: %q, want prometheus", at, p.Datasource.Type))
			}
			walk(at+".panels", p.Panels)
		}
	}
	walk("panels", d.Panels)
	return out
}
