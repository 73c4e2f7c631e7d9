package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/policies"
)

const policyUsage = `usage: cmg policy check FILE
       cmg policy explain -policy FILE [request flags]

  check     validate a policy file: every problem at once, with its line
  explain   show which rule decides a given request, and why the rules before
            it did not match

The policy file format is described in policies/README.md.
`

// runPolicy is `cmg policy`: check and explain a policy file.
func runPolicy(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout, stderr)
	case "explain":
		return policyExplain(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, policyUsage)
		return 0
	}
	fmt.Fprintf(stderr, "cmg policy: unknown subcommand %q\n\n%s", args[0], policyUsage)
	return 2
}

func policyCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: cmg policy check FILE

Validates a policy file strictly and prints every problem with its line
(FILE:LINE: key: problem), exiting 1 if there is any; prints "ok" and a summary
otherwise.
`)
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	p, err := policies.Load(fs.Arg(0))
	if err != nil {
		return printPolicyProblems(err, stdout, stderr)
	}
	fmt.Fprintf(stdout, "ok: %s\n", policySummary(p))
	return 0
}

// printPolicyProblems prints each problem as FILE:LINE: key: message (the form
// editors jump to) and returns the exit code 1.
func printPolicyProblems(err error, stdout, stderr io.Writer) int {
	var ps *configfile.Problems
	if !errors.As(err, &ps) {
		fmt.Fprintf(stderr, "cmg policy: %v\n", err)
		return 1
	}
	for _, q := range ps.List {
		loc := ps.File
		if q.Line > 0 {
			loc = fmt.Sprintf("%s:%d", ps.File, q.Line)
		}
		if q.Path != "" {
			fmt.Fprintf(stdout, "%s: %s: %s\n", loc, q.Path, q.Msg)
		} else {
			fmt.Fprintf(stdout, "%s: %s\n", loc, q.Msg)
		}
	}
	fmt.Fprintf(stderr, "%s: %d problem(s)\n", ps.File, len(ps.List))
	return 1
}

func policySummary(p *policies.Policy) string {
	n := len(p.RuleNames()) - 1
	s := fmt.Sprintf("%d rule(s), default %s", n, p.Default())
	if b, ok := p.Budget(); ok {
		stop := "warn only"
		if b.StopOnCritical {
			stop = "stop serving at critical"
		}
		s += fmt.Sprintf(", egress budget %s per %s (warning %g, critical %g, %s)",
			policies.FormatSize(b.Bytes), shortDuration(b.Window), b.Warning, b.Critical, stop)
	}
	return s
}

// shortDuration drops the zero minutes and seconds Go prints ("336h", not
// "336h0m0s").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// claimFlags collects repeated -claim name=value flags; a name given several
// times becomes a list claim.
type claimFlags map[string]any

func (c claimFlags) String() string { return "" }

func (c claimFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want name=value")
	}
	switch old := c[name].(type) {
	case nil:
		c[name] = value
	case string:
		c[name] = []any{old, value}
	case []any:
		c[name] = append(old, value)
	}
	return nil
}

func policyExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("policy", "", "the policy `FILE` (required)")
	auth := fs.String("auth", "", "how the device authenticated (`METHOD`: certificate, site_token or oidc)")
	subject := fs.String("subject", "", "the client certificate's subject `DN`, most specific first (CN=ws042,OU=Workstations,O=Contoso)")
	issuer := fs.String("issuer", "", "the client certificate's issuer `DN`")
	claims := claimFlags{}
	fs.Var(claims, "claim", "a token claim as `name=value`; repeat it for more claims, or for a list claim")
	source := fs.String("source", "", "the device's `IP` address")
	role := fs.String("role", "", "the `KIND` of role the route leads to: management_point, software_update_point or distribution_point")
	path := fs.String("path", "", "the request `PATH` (/CCM_Proxy_MutualAuth/<RoleID>/...)")
	device := fs.String("device", "", "the device `IDENTITY` (certificate CN, token sub or configured claim)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: cmg policy explain -policy FILE [-auth METHOD] [-subject DN] [-issuer DN]
         [-claim name=value ...] [-source IP] [-role KIND] [-path PATH] [-device ID]

Decides one request under the policy file and prints every rule tried: why
each rule before the deciding one did not match, which rule decided, its
limits, and the reason the device would see. A flag left out is an empty
value, which matches no condition on it.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var bad []string
	if *file == "" {
		bad = append(bad, "-policy is required")
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *auth != "" && !slices.Contains([]string{policies.AuthCertificate, policies.AuthSiteToken, policies.AuthOIDC}, *auth) {
		bad = append(bad, fmt.Sprintf("-auth %q: want certificate, site_token or oidc", *auth))
	}
	if *role != "" && !slices.Contains([]string{policies.RoleManagementPoint, policies.RoleSoftwareUpdatePoint, policies.RoleDistributionPoint}, *role) {
		bad = append(bad, fmt.Sprintf("-role %q: want management_point, software_update_point or distribution_point", *role))
	}
	req := &policies.Request{
		AuthMethod: *auth, CertSubject: *subject, CertIssuer: *issuer,
		RoleKind: *role, Path: *path, Device: *device,
	}
	if len(claims) > 0 {
		req.Claims = claims
	}
	if *source != "" {
		a, err := netip.ParseAddr(*source)
		if err != nil {
			bad = append(bad, fmt.Sprintf("-source %q: not an IP address", *source))
		}
		req.Source = a
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintf(stderr, "cmg policy explain: %s\n", b)
		}
		fs.Usage()
		return 2
	}
	p, err := policies.Load(*file)
	if err != nil {
		return printPolicyProblems(err, stdout, stderr)
	}
	fmt.Fprintf(stdout, "policy: %s (%s)\n", *file, policySummary(p))
	fmt.Fprint(stdout, p.Explain(req).String())
	return 0
}
