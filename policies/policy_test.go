package policies

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// testPolicy exercises every kind of condition; each rule is reachable.
const testPolicy = `
version: 1
default: deny
rules:
  - name: deny-lab
    match:
      source: [198.51.100.0/24, "2001:db8:1ab::/48", 192.0.2.77]
    action: deny
  - name: ipv6-sup
    match:
      family: ipv6
      role: software_update_point
    action: allow
    rate_limit: {requests_per_second: 0.5}
  - name: pki-mp
    match:
      auth: certificate
      issuer: ["CN=Contoso Issuing CA 2,O=Contoso", "re:CN=Contoso Issuing CA [34],O=Contoso"]
      subject: "CN=*,OU=Workstations,O=Contoso"
      role: [management_point]
      path_prefix: [/CCM_Proxy_MutualAuth/]
    action: allow
    rate_limit: {requests_per_second: 2, burst: 30}
    body_limit: 64MiB
    concurrency: 4
  - name: blocked-device
    match:
      device: ["ws-666", "re:kiosk-[0-9]+"]
    action: deny
  - name: aad
    match:
      auth: [oidc]
      claims:
        tid: 72f988bf-86f1-41af-91ab-2d7cd011db47
        groups: [admins, ops]
    action: allow
  - name: numeric-claims
    match:
      auth: site_token
      claims:
        ver: 2
        managed: true
    action: allow
  - name: site-ps1
    match:
      auth: site_token
      claims: {site: PS1}
      role: [management_point, distribution_point]
    action: allow
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestDecide(t *testing.T) {
	p := mustParse(t, testPolicy)
	const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	pki := Request{
		AuthMethod:  AuthCertificate,
		CertSubject: "CN=ws042,OU=Workstations,O=Contoso",
		CertIssuer:  "CN=Contoso Issuing CA 2,O=Contoso",
		Source:      netip.MustParseAddr("203.0.113.7"),
		RoleKind:    RoleManagementPoint,
		Path:        "/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut",
		Device:      "ws042",
	}
	with := func(f func(r *Request)) Request { r := pki; f(&r); return r }
	tests := []struct {
		name string
		req  Request
		want string // rule
		act  Action
	}{
		{"pki device reaches the MP", pki, "pki-mp", Allow},
		{"issuer by regex", with(func(r *Request) { r.CertIssuer = "CN=Contoso Issuing CA 4,O=Contoso" }), "pki-mp", Allow},
		{"issuer regex is anchored", with(func(r *Request) { r.CertIssuer = "CN=Contoso Issuing CA 44,O=Contoso" }), DefaultRule, Deny},
		{"subject glob ignores case", with(func(r *Request) { r.CertSubject = "cn=WS042,ou=workstations,o=contoso" }), "pki-mp", Allow},
		{"subject glob mismatch", with(func(r *Request) { r.CertSubject = "CN=ws042,OU=Servers,O=Contoso" }), DefaultRule, Deny},
		{"path prefix ignores case", with(func(r *Request) { r.Path = "/ccm_proxy_mutualauth/1/x" }), "pki-mp", Allow},
		{"other path prefix", with(func(r *Request) { r.Path = "/CCM_Proxy_ServerAuth/1/x" }), DefaultRule, Deny},
		{"wrong role", with(func(r *Request) { r.RoleKind = RoleDistributionPoint }), DefaultRule, Deny},
		{"lab IPv4 denied first", with(func(r *Request) { r.Source = netip.MustParseAddr("198.51.100.9") }), "deny-lab", Deny},
		{"lab single address", with(func(r *Request) { r.Source = netip.MustParseAddr("192.0.2.77") }), "deny-lab", Deny},
		{"next to the single address", with(func(r *Request) { r.Source = netip.MustParseAddr("192.0.2.78") }), "pki-mp", Allow},
		{"lab IPv4-mapped denied", with(func(r *Request) { r.Source = netip.MustParseAddr("::ffff:198.51.100.9") }), "deny-lab", Deny},
		{"lab IPv6 denied", with(func(r *Request) { r.Source = netip.MustParseAddr("2001:db8:1ab::5") }), "deny-lab", Deny},
		{"IPv6 to the SUP", with(func(r *Request) {
			r.Source = netip.MustParseAddr("2001:db8::5")
			r.RoleKind = RoleSoftwareUpdatePoint
		}), "ipv6-sup", Allow},
		{"IPv4 to the SUP falls to default", with(func(r *Request) { r.RoleKind = RoleSoftwareUpdatePoint }), DefaultRule, Deny},
		{"no source matches no source rule", with(func(r *Request) { r.Source = netip.Addr{} }), "pki-mp", Allow},
		{"blocked device glob", Request{AuthMethod: AuthOIDC, Device: "WS-666", Claims: map[string]any{"tid": tid, "groups": []any{"ops"}}}, "blocked-device", Deny},
		{"blocked device regex", Request{AuthMethod: AuthSiteToken, Device: "kiosk-12"}, "blocked-device", Deny},
		{"aad with tenant and group", Request{AuthMethod: AuthOIDC, Claims: map[string]any{"tid": tid, "groups": []any{"users", "ops"}}}, "aad", Allow},
		{"aad groups as []string", Request{AuthMethod: AuthOIDC, Claims: map[string]any{"tid": tid, "groups": []string{"admins"}}}, "aad", Allow},
		{"aad without the group", Request{AuthMethod: AuthOIDC, Claims: map[string]any{"tid": tid, "groups": []any{"users"}}}, DefaultRule, Deny},
		{"aad other tenant", Request{AuthMethod: AuthOIDC, Claims: map[string]any{"tid": "x", "groups": "ops"}}, DefaultRule, Deny},
		{"aad tenant differs in case", Request{AuthMethod: AuthOIDC, Claims: map[string]any{"tid": strings.ToUpper(tid), "groups": "ops"}}, DefaultRule, Deny},
		{"aad no claims", Request{AuthMethod: AuthOIDC}, DefaultRule, Deny},
		{"numbers and booleans as float64", Request{AuthMethod: AuthSiteToken, Claims: map[string]any{"ver": float64(2), "managed": true}}, "numeric-claims", Allow},
		{"numbers as json.Number", Request{AuthMethod: AuthSiteToken, Claims: map[string]any{"ver": json.Number("2.0"), "managed": "true"}}, "numeric-claims", Allow},
		{"numbers as int", Request{AuthMethod: AuthSiteToken, Claims: map[string]any{"ver": 2, "managed": true}}, "numeric-claims", Allow},
		{"wrong number", Request{AuthMethod: AuthSiteToken, Claims: map[string]any{"ver": 2.5, "managed": true, "site": "PS1"}, RoleKind: RoleManagementPoint}, "site-ps1", Allow},
		{"site token to content", Request{AuthMethod: AuthSiteToken, Claims: map[string]any{"site": "PS1"}, RoleKind: RoleDistributionPoint}, "site-ps1", Allow},
		{"site token to SUP", Request{AuthMethod: AuthSiteToken, Claims: map[string]any{"site": "PS1"}, RoleKind: RoleSoftwareUpdatePoint}, DefaultRule, Deny},
		{"unknown auth method", Request{AuthMethod: "kerberos"}, DefaultRule, Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(&tt.req)
			if d.Rule != tt.want || d.Action != tt.act {
				t.Errorf("got %s by %q, want %s by %q\n%s", d.Action, d.Rule, tt.act, tt.want, p.Explain(&tt.req))
			}
			if e := p.Explain(&tt.req).Decision; e != d {
				t.Errorf("Explain decided %+v, Decide %+v", e, d)
			}
		})
	}
}

func TestDecisionCarriesLimits(t *testing.T) {
	p := mustParse(t, testPolicy)
	tests := []struct {
		name string
		req  Request
		want Decision
	}{
		{
			name: "all limits",
			req: Request{AuthMethod: AuthCertificate, CertSubject: "CN=a,OU=Workstations,O=Contoso", CertIssuer: "CN=Contoso Issuing CA 2,O=Contoso",
				RoleKind: RoleManagementPoint, Path: "/CCM_Proxy_MutualAuth/1"},
			want: Decision{Rule: "pki-mp", Action: Allow, Limits: Limits{RequestsPerSecond: 2, Burst: 30, BodyBytes: 64 << 20, Concurrency: 4},
				Reason: `allowed by policy rule "pki-mp"`},
		},
		{
			name: "burst defaults to the rate rounded up",
			req:  Request{Source: netip.MustParseAddr("2001:db8::1"), RoleKind: RoleSoftwareUpdatePoint},
			want: Decision{Rule: "ipv6-sup", Action: Allow, Limits: Limits{RequestsPerSecond: 0.5, Burst: 1}, Reason: `allowed by policy rule "ipv6-sup"`},
		},
		{
			name: "deny",
			req:  Request{Source: netip.MustParseAddr("198.51.100.1")},
			want: Decision{Rule: "deny-lab", Action: Deny, Reason: `denied by policy rule "deny-lab"`},
		},
		{
			name: "default",
			req:  Request{},
			want: Decision{Rule: DefaultRule, Action: Deny, Reason: "denied by the policy's default action"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Decide(&tt.req); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEmptyMatchAndDefaultAllow(t *testing.T) {
	p := mustParse(t, "version: 1\ndefault: allow\nrules:\n  - {name: all, match: {}, action: allow, concurrency: 2}\n")
	if d := p.Decide(&Request{}); d.Rule != "all" || d.Concurrency != 2 {
		t.Errorf("got %+v, want rule all with concurrency 2", d)
	}
	p = mustParse(t, "version: 1\ndefault: allow\n")
	if d := p.Decide(&Request{}); d.Rule != DefaultRule || d.Action != Allow {
		t.Errorf("got %+v, want the default allow", d)
	}
	if got := strings.Join(mustParse(t, testPolicy).RuleNames(), ","); got != "deny-lab,ipv6-sup,pki-mp,blocked-device,aad,numeric-claims,site-ps1,default" {
		t.Errorf("RuleNames: got %s", got)
	}
}

func TestAliases(t *testing.T) {
	p := mustParse(t, `
version: 1
default: deny
rules:
  - name: a
    match:
      source: &nets [10.0.0.0/8, 172.16.0.0/12]
      role: management_point
    action: allow
  - name: b
    match: &sup
      source: *nets
      role: software_update_point
    action: allow
  - name: c
    match: *sup
    action: deny
`)
	req := Request{Source: netip.MustParseAddr("172.16.3.4"), RoleKind: RoleSoftwareUpdatePoint}
	if d := p.Decide(&req); d.Rule != "b" {
		t.Errorf("got %q, want b", d.Rule)
	}
}

func TestExplain(t *testing.T) {
	p := mustParse(t, testPolicy)
	req := Request{
		AuthMethod: AuthOIDC, Claims: map[string]any{"tid": "other", "groups": []any{"x"}},
		Source: netip.MustParseAddr("203.0.113.9"), RoleKind: RoleManagementPoint, Path: "/CCM_Proxy_ServerAuth/1/CCM_STS",
	}
	tr := p.Explain(&req)
	if tr.Decision.Rule != DefaultRule {
		t.Fatalf("decided by %q, want the default", tr.Decision.Rule)
	}
	if len(tr.Steps) != 7 {
		t.Fatalf("got %d steps, want 7", len(tr.Steps))
	}
	out := tr.String()
	for _, want := range []string{
		`rule "deny-lab" (line 5): no match`,
		`source 203.0.113.9 is in none of 198.51.100.0/24, 2001:db8:1ab::/48, 192.0.2.77/32`,
		`source 203.0.113.9 is not ipv6`,
		`auth method "oidc" is not "certificate"`,
		`subject (none) matches none of "CN=*,OU=Workstations,O=Contoso"`,
		`path "/CCM_Proxy_ServerAuth/1/CCM_STS" starts with none of "/CCM_Proxy_MutualAuth/"`,
		`claim "tid" is "other", not "72f988bf-86f1-41af-91ab-2d7cd011db47"`,
		`claim "groups" is ["x"], not one of "admins", "ops"`,
		`claim "site" is missing (wanted "PS1")`,
		`auth method "oidc" is not "site_token"`,
		"decision: deny by the default action",
		"reason: denied by the policy's default action",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
	req.Claims = map[string]any{"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "groups": "ops"}
	out = p.Explain(&req).String()
	if !strings.Contains(out, `rule "aad" (line 30): matches`) || !strings.Contains(out, "decision: allow by rule \"aad\"\nlimits: no limits") {
		t.Errorf("explanation of a match:\n%s", out)
	}
}

func TestLimitsString(t *testing.T) {
	tests := []struct {
		l    Limits
		want string
	}{
		{Limits{}, "no limits"},
		{Limits{RequestsPerSecond: 2.5, Burst: 5, BodyBytes: 64 << 20, Concurrency: 3}, "rate 2.5/s burst 5, body 64MiB, concurrency 3"},
		{Limits{BodyBytes: 1500}, "body 1500B"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p := mustParse(t, testPolicy)
	reqs := benchRequests()
	for _, req := range reqs {
		if n := testing.AllocsPerRun(100, func() { p.Decide(req) }); n != 0 {
			t.Errorf("Decide(%+v): %v allocations, want 0", *req, n)
		}
	}
}

func benchRequests() []*Request {
	return []*Request{
		{AuthMethod: AuthCertificate, CertSubject: "CN=ws042,OU=Workstations,O=Contoso", CertIssuer: "CN=Contoso Issuing CA 3,O=Contoso",
			Source: netip.MustParseAddr("203.0.113.7"), RoleKind: RoleManagementPoint, Path: "/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut", Device: "ws042"},
		{AuthMethod: AuthOIDC, Claims: map[string]any{"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "groups": []any{"users", "ops"}},
			Source: netip.MustParseAddr("2001:db8::9"), RoleKind: RoleManagementPoint, Path: "/CCM_Proxy_ServerAuth/1/CCM_STS", Device: "d1"},
		{AuthMethod: AuthSiteToken, Claims: map[string]any{"ver": float64(2), "managed": true}, Source: netip.MustParseAddr("192.0.2.1"), Device: "d2"},
		{AuthMethod: AuthSiteToken, Claims: map[string]any{"site": "PS2"}, Source: netip.MustParseAddr("192.0.2.1"), Device: "d3"},
	}
}

func BenchmarkDecide(b *testing.B) {
	p := mustParse(b, testPolicy)
	reqs := benchRequests()
	for _, req := range reqs {
		b.Run(p.Decide(req).Rule, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(req)
			}
		})
	}
}
