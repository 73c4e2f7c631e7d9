package e2e

import (
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
)

// The policy engine in the gateway's request path (DESIGN section 10), driven
// by real curl through the demo setup.

// limitsPolicy gives each limit its own path under the management point.
var limitsPolicy = fmt.Sprintf(`version: 1
default: deny
rules:
  - name: rate-limited
    match: {path_prefix: %[1]s/rate/}
    action: allow
    rate_limit: {requests_per_second: 0.1, burst: 2}
  - name: body-limited
    match: {path_prefix: %[1]s/body/}
    action: allow
    body_limit: 1KiB
  - name: one-at-a-time
    match: {path_prefix: %[1]s/conc/}
    action: allow
    concurrency: 1
  - name: lab-path
    match: {path_prefix: %[1]s/denied/}
    action: deny
  - name: certificate-devices
    match: {auth: certificate, role: management_point}
    action: allow
`, mpPrefix)

func TestPolicyLimits(t *testing.T) {
	dir := t.TempDir()
	policy := writeTestFile(t, dir, "policy.yaml", limitsPolicy)
	e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) { c.Policy.File = policy }})
	gw := e.m.Gateways[0].ClientURL
	admin := e.gws[0].admin

	fams := scrape(t, admin)
	for _, rule := range []string{"rate-limited", "body-limited", "one-at-a-time", "certificate-devices"} {
		if !hasSeries(fams, "cmg_gateway_policy_decisions_total", "rule", rule, "action", "allow") {
			t.Errorf("no series cmg_gateway_policy_decisions_total{rule=%q,action=allow} before any request", rule)
		}
	}
	for _, rule := range []string{"lab-path", "default"} {
		if !hasSeries(fams, "cmg_gateway_policy_decisions_total", "rule", rule, "action", "deny") {
			t.Errorf("no series cmg_gateway_policy_decisions_total{rule=%q,action=deny} before any request", rule)
		}
	}

	t.Run("deny", func(t *testing.T) {
		res := e.curl(true, gw+mpPrefix+"/denied/cmg-echo")
		wantError(t, res, 403, "PolicyDenied")
		if !strings.Contains(string(res.body), `lab-path`) {
			t.Errorf("detail %s does not name the rule", res.body)
		}
		wantError(t, e.curl(true, gw+supPrefix+"/cmg-echo"), 403, "PolicyDenied") // the default
	})

	t.Run("rate limit", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if res := e.curl(true, gw+mpPrefix+"/rate/cmg-echo"); res.status != 200 {
				t.Fatalf("request %d within the burst: got %d %s", i+1, res.status, res.body)
			}
		}
		res := e.curl(true, gw+mpPrefix+"/rate/cmg-echo")
		wantError(t, res, 429, "RateLimited")
		if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 || ra > 10 {
			t.Errorf("Retry-After %q, want 1 to 10 seconds (one token at 0.1/s)", res.header.Get("Retry-After"))
		}
	})

	t.Run("body limit", func(t *testing.T) {
		big := writeTestFile(t, dir, "big", strings.Repeat("x", 2048))
		exact := writeTestFile(t, dir, "exact", strings.Repeat("y", 1024))
		before := e.rolesStats().Kinds["helper.sink"]
		// Declared too large: refused before a byte of the body is read.
		wantError(t, e.curl(true, gw+mpPrefix+"/body/cmg-sink", "--data-binary", "@"+big), 413, "RequestTooLarge")
		if got := e.rolesStats().Kinds["helper.sink"]; got != before {
			t.Errorf("the role got %d requests of a refused declared body, want none", got-before)
		}
		// Chunked, growing past the limit mid-stream: the device gets the 413.
		res := e.curl(true, gw+mpPrefix+"/body/cmg-sink", "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+big)
		wantError(t, res, 413, "RequestTooLarge")
		// Exactly at the limit, chunked: delivered whole.
		res = e.curl(true, gw+mpPrefix+"/body/cmg-sink", "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+exact)
		var sink struct {
			BodyLen int64 `json:"body_len"`
		}
		if res.status != 200 || json.Unmarshal(res.body, &sink) != nil || sink.BodyLen != 1024 {
			t.Errorf("body at the limit: got %d %s, want 200 with 1024 bytes delivered", res.status, res.body)
		}
	})

	t.Run("concurrency", func(t *testing.T) {
		var wg sync.WaitGroup
		var first curlResult
		wg.Add(1)
		go func() {
			defer wg.Done()
			first = e.curl(true, gw+mpPrefix+"/conc/cmg-echo?cmg-delay=3s")
		}()
		waitFor(t, "the first request in flight", 10*time.Second, func() bool {
			return metricValue(scrape(t, admin), "cmg_gateway_requests_in_flight", "role", "management_point") >= 1
		})
		res := e.curl(true, gw+mpPrefix+"/conc/cmg-echo")
		wantError(t, res, 429, "RateLimited")
		if res.header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q, want 1", res.header.Get("Retry-After"))
		}
		wg.Wait()
		if first.status != 200 {
			t.Errorf("the request in flight: got %d, want 200", first.status)
		}
		if res := e.curl(true, gw+mpPrefix+"/conc/cmg-echo"); res.status != 200 {
			t.Errorf("after the first ended: got %d, want 200", res.status)
		}
	})

	fams = scrape(t, admin)
	for _, c := range []struct {
		rule, action string
		min          float64
	}{{"rate-limited", "allow", 3}, {"lab-path", "deny", 1}, {"default", "deny", 1}, {"body-limited", "allow", 3}, {"one-at-a-time", "allow", 3}} {
		if got := metricValue(fams, "cmg_gateway_policy_decisions_total", "rule", c.rule, "action", c.action); got < c.min {
			t.Errorf("cmg_gateway_policy_decisions_total{rule=%q,action=%q} = %v, want at least %v", c.rule, c.action, got, c.min)
		}
	}
	for _, r := range []string{"RateLimited", "RequestTooLarge", "PolicyDenied"} {
		if got := metricValue(fams, "cmg_gateway_errors_total", "reason", r); got < 1 {
			t.Errorf("cmg_gateway_errors_total{reason=%q} = %v, want at least 1", r, got)
		}
	}
}

// TestEgressBudget: the budget's warning and critical states show in the
// metrics, and critical stops serving when the policy says so.
func TestEgressBudget(t *testing.T) {
	policy := writeTestFile(t, t.TempDir(), "policy.yaml", `version: 1
default: allow
egress_budget:
  bytes: 100kB
  window: 1h
  warning: 0.5
  critical: 0.9
  stop_on_critical: true
`)
	e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) { c.Policy.File = policy }})
	gw := e.m.Gateways[0].ClientURL
	admin := e.gws[0].admin
	ratio := func() float64 { return metricValue(scrape(t, admin), "cmg_cost_egress_budget_used_ratio") }

	fams := scrape(t, admin)
	if w, c := metricValue(fams, "cmg_cost_egress_budget_threshold_ratio", "level", "warning"), metricValue(fams, "cmg_cost_egress_budget_threshold_ratio", "level", "critical"); w != 0.5 || c != 0.9 {
		t.Errorf("thresholds warning %v, critical %v; want 0.5 and 0.9", w, c)
	}
	if r := ratio(); r != 0 {
		t.Errorf("used ratio %v before any request, want 0", r)
	}
	if res := e.curl(true, gw+mpPrefix+"/cmg-blob?size=55000"); res.status != 200 || len(res.body) != 55000 {
		t.Fatalf("download: got %d, %d bytes", res.status, len(res.body))
	}
	// An exchange's bytes are counted when it ends, just after the device
	// has its last byte.
	waitFor(t, "the 55 kB to be counted", 5*time.Second, func() bool { return ratio() >= 0.5 })
	if r := ratio(); r >= 0.9 {
		t.Fatalf("used ratio %v after 55 kB down, want warning (0.5 to 0.9)", r)
	}
	if res := e.curl(true, gw+mpPrefix+"/cmg-blob?size=36000"); res.status != 200 {
		t.Fatalf("second download: got %d", res.status)
	}
	waitFor(t, "the 91 kB to reach critical (at least 0.9)", 5*time.Second, func() bool { return ratio() >= 0.9 })
	wantError(t, e.curl(true, gw+mpPrefix+"/cmg-echo"), 503, "EgressBudgetExceeded")
	// The other instance counts its own bytes and still serves.
	if res := e.curl(true, e.m.Gateways[1].ClientURL+mpPrefix+"/cmg-echo"); res.status != 200 {
		t.Errorf("instance 1: got %d, want 200", res.status)
	}
}

// TestExamplePolicies runs each example policy of policies/examples in a
// gateway with devices of its scenario, so the examples stay true to what the
// gateway matches on: certificate DNs, token claims, auth methods, roles.
func TestExamplePolicies(t *testing.T) {
	example := func(name string) string {
		p, err := filepath.Abs(filepath.Join("..", "policies", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("pki-devices", func(t *testing.T) {
		dir := t.TempDir()
		root := newTestCA(t, pkix.Name{CommonName: "Contoso Root CA", Organization: []string{"Contoso"}, Country: []string{"US"}}, nil)
		ca := func(cn string) *testCA {
			return newTestCA(t, pkix.Name{CommonName: cn, Organization: []string{"Contoso"}, Country: []string{"US"}}, root)
		}
		ca1, ca2, ca3 := ca("Contoso Issuing CA 1"), ca("Contoso Issuing CA 2"), ca("Contoso Issuing CA 3")
		device := func(ca *testCA, cn, ou string) []string {
			c, k := ca.leaf(t, dir, cn, pkix.Name{CommonName: cn, OrganizationalUnit: []string{ou}, Organization: []string{"Contoso"}, Country: []string{"US"}}, true)
			return []string{"--cert", c, "--key", k}
		}
		rootFile := root.pemFile(t, dir, "contoso-root.pem")
		policy := example("pki-devices.yaml")
		e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) {
			c.Auth.Certificates.Roots = append(c.Auth.Certificates.Roots, rootFile)
			c.Auth.Revocation.Enabled = false // the test CAs publish no CRL
			c.Policy.File = policy
		}})
		gw := e.m.Gateways[0].ClientURL
		for _, tt := range []struct {
			name   string
			args   []string
			path   string
			status int
			rule   string
		}{
			{"workstation at the MP", device(ca2, "ws042", "Workstations"), mpPrefix + "/cmg-echo", 200, "workstations-management-point"},
			{"workstation of CA 3 at the SUP", device(ca3, "ws043", "Workstations"), supPrefix + "/cmg-echo", 200, "pki-software-update-point"},
			{"server at the MP", device(ca3, "srv01", "Servers"), mpPrefix + "/cmg-echo", 200, "servers-management-point"},
			{"retired issuing CA", device(ca1, "ws001", "Workstations"), mpPrefix + "/cmg-echo", 403, "deny-retired-issuing-ca"},
			{"certificate of another PKI", []string{"--cert", e.m.ClientCertFile, "--key", e.m.ClientKeyFile}, mpPrefix + "/cmg-echo", 403, "default"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res := e.curl(false, gw+tt.path, tt.args...)
				if res.status != tt.status {
					t.Fatalf("got %d %s, want %d", res.status, res.body, tt.status)
				}
				if got := metricValue(scrape(t, e.gws[0].admin), "cmg_gateway_policy_decisions_total", "rule", tt.rule); got < 1 {
					t.Errorf("no decision counted for rule %q", tt.rule)
				}
			})
		}
	})

	t.Run("azure-ad-devices", func(t *testing.T) {
		iss := newOIDCIssuer(t)
		iss.addKey("k1")
		policy := example("azure-ad-devices.yaml")
		e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) {
			iss.oidcConfig(c, testTenant, otherTenant)
			c.Policy.File = policy
		}})
		gw := e.m.Gateways[0].ClientURL
		fabrikam := func(compliant bool) string {
			c := azureClaims("dev-fab-1")
			c["tid"], c["iss"] = otherTenant, azureIssuer(otherTenant)
			if compliant {
				c["deviceCompliance"] = "true"
			}
			return sign(t, iss.key("k1"), "k1", c)
		}
		contoso := sign(t, iss.key("k1"), "k1", azureClaims("dev-con-1"))
		for _, tt := range []struct {
			name, token, path string
			status            int
		}{
			{"contoso at the MP, token route", contoso, mpServerPrefix + "/cmg-echo", 200},
			{"contoso at the MP, CCM_STS", contoso, mpPrefix + "/CCM_STS", 200},
			{"contoso at the SUP", contoso, "/CCM_Proxy_ServerAuth/" + demo.SUPRoleID + "/cmg-echo", 200},
			{"compliant fabrikam device at the MP", fabrikam(true), mpServerPrefix + "/cmg-echo", 200},
			{"fabrikam device without compliance", fabrikam(false), mpServerPrefix + "/cmg-echo", 403},
			{"compliant fabrikam device at the SUP", fabrikam(true), "/CCM_Proxy_ServerAuth/" + demo.SUPRoleID + "/cmg-echo", 403},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if res := e.curlToken(tt.token, gw+tt.path); res.status != tt.status {
					t.Errorf("got %d %s, want %d", res.status, res.body, tt.status)
				}
			})
		}
	})

	t.Run("site-token-devices", func(t *testing.T) {
		policy := example("site-token-devices.yaml")
		e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) { c.Policy.File = policy }})
		gw := e.m.Gateways[0].ClientURL
		tok := issueSiteToken(t, e.m, "-kind", "device", "-subject", "GUID:0001")
		for _, path := range []string{mpServerPrefix + "/cmg-echo", "/CCM_Proxy_ServerAuth/" + demo.SUPRoleID + "/cmg-echo"} {
			if res := e.curlToken(tok, gw+path); res.status != 200 {
				t.Errorf("%s: got %d %s, want 200", path, res.status, res.body)
			}
		}
		// Certificate devices have no rule in this file.
		wantError(t, e.curl(true, gw+mpPrefix+"/cmg-echo"), 403, "PolicyDenied")
	})
}

func wantError(t *testing.T, res curlResult, status int, reason string) {
	t.Helper()
	if res.status != status || res.header.Get("CMG-Error") != reason {
		t.Errorf("got %d %q %s (%s), want %d %s", res.status, res.header.Get("CMG-Error"), res.body, res.stderr, status, reason)
	}
}

func hasSeries(fams map[string]*dto.MetricFamily, name string, labels ...string) bool {
	f := fams[name]
	if f == nil {
		return false
	}
	for _, m := range f.Metric {
		if hasLabels(m, labels) {
			return true
		}
	}
	return false
}
