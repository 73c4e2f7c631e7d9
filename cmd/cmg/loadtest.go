package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/identity"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/report"
	ltrun "github.com/cmg-gateway/cmg/loadtest/run"
	"github.com/cmg-gateway/cmg/pki"
)

// runLoadtest is `cmg loadtest`: the device simulator, and its subcommands
// roles (the simulated site roles), merge (shards' reports) and chain (the
// original product's server chain, to reproduce its handshakes).
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "roles":
			return runRoles(ctx, args[1:], stdout, stderr)
		case "merge":
			return runLoadtestMerge(args[1:], stdout, stderr)
		case "chain":
			return runLoadtestChain(args[1:], stdout, stderr)
		}
	}
	return runLoadtestDevices(ctx, args, stdout, stderr)
}

// list is a repeatable, comma-separated flag.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

const loadtestUsage = `usage: cmg loadtest -target URL[,URL...] | -demo DIR  [-devices N] [-profile default|dynamic|FILE]
         [-habits original|cmg] [-duration D] [-time-scale K] [-shard i/n] [-json] [-html FILE] ...
       cmg loadtest roles -listen ADDR     run the simulated management point and software update point
       cmg loadtest merge FILE.json...     merge the JSON reports of shards into one
       cmg loadtest chain -out DIR         write the original product's kind of server chain (RSA-2048
                                           with an intermediate) for a gateway that reproduces it

Simulated devices, each with its own identity, send the traffic of a Configuration
Manager client (the profile's classes: policy polls, state and status messages,
inventory, update scans, ...) to the gateway instances on an open-loop schedule.
-duration is simulated time (90s, 8h, 7d, 1mo or month); -time-scale K runs K
simulated seconds per wall second (8640 runs a month in 5 minutes). The report gives
throughput, latency percentiles per role, errors by reason, and egress per device
per month on both legs (the devices' sockets and, with -site, the simulated site's),
beside the gateway's own counters (with -gateway-admin). -demo DIR takes targets,
roots, role IDs, site, admin URLs and the device CA from a demo directory.

flags:
`

func runLoadtestDevices(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := ltrun.DefaultConfig()
	var targets, roots, admins, certs, keys list
	fs.Var(&targets, "target", "gateway device `URL`s, comma-separated or repeated (https://host:port)")
	demoDir := fs.String("demo", "", "take targets, roots, role IDs, site and admin URLs and the device CA from this demo `DIR` (cmg demo init)")
	devices := fs.Int("devices", def.Devices, "number of simulated `devices` (all shards)")
	prof := fs.String("profile", "default", "traffic profile: "+strings.Join(profile.Builtins(), ", ")+" or a profile `FILE`")
	habits := fs.String("habits", "", "connection habits: original or cmg (default: the profile's)")
	auth := fs.String("auth", "", "override the profile's auth: token or certificate")
	duration := fs.String("duration", "1h", "simulated `span` (90s, 8h, 7d, 1mo)")
	scale := fs.Float64("time-scale", def.TimeScale, "simulated seconds per wall second, `K`")
	shard := fs.String("shard", "0/1", "run shard `i/n` of the devices (a process holds at most ~20,000 descriptors)")
	spread := fs.String("spread", def.Spread, "how the load balancer spreads: connection (5-tuple hash) or device (client affinity)")
	fs.Var(&roots, "ca", "PEM `file`s of the roots devices trust (comma-separated or repeated)")
	serverName := fs.String("server-name", "", "TLS server `name` (default: the target's host)")
	mpRole := fs.String("mp-role-id", demo.MPRoleID, "management point `RoleID`")
	supRole := fs.String("sup-role-id", demo.SUPRoleID, "software update point `RoleID`")
	site := fs.String("site", "", "simulated roles base `URL` (http://host:port) to read /roles/stats from: the site leg")
	fs.Var(&admins, "gateway-admin", "gateway admin `URL`s to scrape /metrics from (comma-separated or repeated)")
	deviceCA := fs.String("device-ca", "", "issue device certificates with this CA certificate `file`")
	deviceCAKey := fs.String("device-ca-key", "", "the device CA's key `file`")
	keyType := fs.String("key-type", string(identity.ECDSA), "key of issued device certificates: ecdsa or rsa2048")
	fs.Var(&certs, "cert", "device certificate `file`s instead of issuing (pairs with -key)")
	fs.Var(&keys, "key", "device key `file`s, one per -cert")
	tokenKey := fs.String("token-key", "", "site signing key `file`: devices carry site tokens instead of certificates")
	tokenSite := fs.String("token-site", demo.Site, "the `site` the tokens are for")
	prefix := fs.String("name-prefix", "loadtest-device", "device name `prefix`")
	timeout := fs.Duration("timeout", def.Timeout, "bound on one exchange, connecting included")
	seed := fs.Uint64("seed", def.Seed, "schedule and content `seed`")
	maxInFlight := fs.Int("max-in-flight", def.MaxInFlight, "occurrences in progress at most in this process")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of text")
	htmlOut := fs.String("html", "", "also write the report as a self-contained HTML page to `FILE`")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprint(stderr, loadtestUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := def
	cfg.Targets, cfg.RootCAs, cfg.GatewayAdmin = targets, roots, admins
	cfg.SiteURL, cfg.ServerName, cfg.MPRoleID, cfg.SUPRoleID = *site, *serverName, *mpRole, *supRole
	if *demoDir != "" {
		m, err := demo.Load(*demoDir)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		if len(cfg.Targets) == 0 {
			for _, g := range m.Gateways {
				cfg.Targets = append(cfg.Targets, g.ClientURL)
			}
		}
		if len(cfg.RootCAs) == 0 {
			cfg.RootCAs = []string{m.CAFile}
		}
		if len(cfg.GatewayAdmin) == 0 {
			for _, g := range m.Gateways {
				cfg.GatewayAdmin = append(cfg.GatewayAdmin, g.AdminURL)
			}
		}
		if cfg.SiteURL == "" {
			cfg.SiteURL = "http://" + m.Roles.Listen
		}
		if *deviceCA == "" && len(certs) == 0 && *tokenKey == "" {
			*deviceCA = filepath.Join(m.PKIDir, pki.DeviceCACert)
			*deviceCAKey = filepath.Join(m.PKIDir, pki.DeviceCAKey)
		}
	}
	var err error
	if cfg.Profile, err = profile.Lookup(*prof); err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if *auth != "" {
		cfg.Profile.Auth = *auth
	}
	cfg.Habits = *habits
	d, err := profile.ParseDuration(*duration)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: -duration: %v\n", err)
		return 2
	}
	cfg.Duration, cfg.TimeScale, cfg.Devices = d, *scale, *devices
	if cfg.Shard, cfg.Shards, err = parseShard(*shard); err != nil {
		fmt.Fprintf(stderr, "loadtest: -shard: %v\n", err)
		return 2
	}
	cfg.Spread, cfg.Timeout, cfg.Seed, cfg.MaxInFlight = *spread, *timeout, *seed, *maxInFlight
	switch {
	case *tokenKey != "":
		cfg.Identity, err = identity.NewSiteTokens(*tokenKey, *tokenSite, "", *prefix, nil)
	case len(certs) > 0:
		cfg.Identity, err = identity.NewFiles(certs, keys)
	case *deviceCA != "":
		cfg.Identity, err = identity.NewIssuer(*deviceCA, *deviceCAKey, *prefix, identity.KeyType(*keyType))
	default:
		err = fmt.Errorf("give the devices' identity: -device-ca and -device-ca-key, -cert and -key, -token-key, or -demo DIR")
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 2
	}
	if !*quiet && isTerminal(stderr) {
		cfg.Progress = stderr
	}
	rep, err := ltrun.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	return writeLoadReport(rep, *asJSON, *htmlOut, stdout, stderr)
}

func writeLoadReport(rep *report.Report, asJSON bool, htmlOut string, stdout, stderr io.Writer) int {
	if htmlOut != "" {
		f, err := os.Create(htmlOut)
		if err == nil {
			err = rep.WriteHTML(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: -html: %v\n", err)
			return 1
		}
	}
	if asJSON {
		if err := rep.WriteJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		return 0
	}
	rep.WriteText(stdout)
	return 0
}

func parseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("want i/n with 0 <= i < n, not %q", s)
	}
	return i, n, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runLoadtestMerge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the merged report as JSON")
	htmlOut := fs.String("html", "", "also write the merged report as HTML to `FILE`")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: cmg loadtest merge [-json] [-html FILE] SHARD.json...")
		return 2
	}
	var reps []*report.Report
	for _, f := range fs.Args() {
		r, err := report.ReadJSON(f)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest merge: %v\n", err)
			return 1
		}
		reps = append(reps, r)
	}
	m, err := report.Merge(reps)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest merge: %v\n", err)
		return 1
	}
	return writeLoadReport(m, *asJSON, *htmlOut, stdout, stderr)
}

func runLoadtestChain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest chain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the chain into this `DIR`")
	var hosts list
	fs.Var(&hosts, "host", "DNS names and addresses of the service (comma-separated; localhost and 127.0.0.1 are always in)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *out == "" {
		fmt.Fprintln(stderr, "usage: cmg loadtest chain -out DIR [-host NAME,...]")
		return 2
	}
	sc, err := identity.WriteOriginalServerChain(*out, hosts)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest chain: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "server certificate (leaf, intermediate and root, as IIS sends them): %s\nkey: %s\nroot for devices (-ca): %s\n", sc.CertFile, sc.KeyFile, sc.RootFile)
	return 0
}
