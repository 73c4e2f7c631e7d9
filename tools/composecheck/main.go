// Command composecheck loads a compose file the way `docker compose config`
// does — with compose-go, the loader of Docker Compose v2: schema validation,
// interpolation, merge keys, normalisation, paths resolved — and checks that
// the cmg stack has what packaging/compose promises: a gateway and a connector
// built from the repository's Dockerfile, Prometheus with the rules of
// dashboards/prometheus, Grafana provisioned with dashboards/, Pyroscope and a
// trace backend. It prints the normalised file, as `docker compose config` does.
//
//	composecheck -f packaging/compose/compose.yaml
//
// The machines that run CI have Docker's engine but no compose plugin, and
// building Compose itself would take minutes; its loader takes seconds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	file := flag.String("f", "packaging/compose/compose.yaml", "the compose `file`")
	quiet := flag.Bool("q", false, "only check; do not print the normalised file")
	flag.Parse()
	p, err := load(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	if !*quiet {
		out, err := p.MarshalYAML()
		if err != nil {
			fmt.Fprintln(os.Stderr, "composecheck:", err)
			os.Exit(1)
		}
		os.Stdout.Write(out)
	}
	problems := check(p)
	for _, q := range problems {
		fmt.Fprintln(os.Stderr, "composecheck: FAIL", q)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "composecheck: %s: ok (%d services)\n", *file, len(p.Services))
}

func load(file string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// check returns what the stack lacks.
func check(p *types.Project) []string {
	var out []string
	repo, _ := filepath.Abs(filepath.Join(p.WorkingDir, "..", ".."))
	for _, name := range []string{"gateway", "connector"} {
		s, ok := p.Services[name]
		switch {
		case !ok:
			out = append(out, "no service "+name)
		case s.Build == nil || filepath.Clean(s.Build.Context) != repo:
			out = append(out, name+": not built from the repository's Dockerfile")
		}
	}
	wantMount := func(service, source, target string) {
		s, ok := p.Services[service]
		if !ok {
			out = append(out, "no service "+service)
			return
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == filepath.Join(repo, source) && v.Target == target {
				return
			}
		}
		out = append(out, fmt.Sprintf("%s: does not mount %s at %s", service, source, target))
	}
	wantMount("prometheus", "dashboards/prometheus", "/etc/prometheus/rules")
	wantMount("grafana", "dashboards/provisioning", "/etc/grafana/provisioning")
	wantMount("grafana", "dashboards/grafana", "/var/lib/grafana/dashboards/cmg")
	if g, ok := p.Services["grafana"]; ok {
		for _, k := range []string{"CMG_PROMETHEUS_URL", "CMG_TRACES_URL", "CMG_PROFILES_URL"} {
			if v := g.Environment[k]; v == nil || *v == "" {
				out = append(out, "grafana: "+k+" is not set (dashboards/provisioning reads it)")
			}
		}
	}
	for _, name := range []string{"pyroscope", "jaeger"} {
		if _, ok := p.Services[name]; !ok {
			out = append(out, "no service "+name)
		}
	}
	for name, s := range p.Services {
		if s.Image == "" {
			out = append(out, name+": no image")
		} else if !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			out = append(out, name+": image "+s.Image+" is not pinned to a tag")
		}
	}
	return out
}
