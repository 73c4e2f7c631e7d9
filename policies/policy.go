// Package policies is the gateway's policy engine (DESIGN section 10): a YAML
// policy file of ordered rules (first match wins) and a default action, compiled
// once into matchers so that deciding a request is fast and allocation-free; the
// per-device enforcement state that the deciding rule's limits need (request rate,
// in-flight requests) in bounded memory; and an egress budget that guards cost.
//
// The gateway authenticates and routes a request first, then asks the Engine to
// Admit it (DESIGN section 7). The package holds no net/http code in the decision
// path; enforcement failures are *httperror.Error values with the reasons of
// DESIGN section 8. The file format is documented in README.md.
package policies

import (
	"net/netip"
	"strconv"
	"strings"
)

// Action is what a rule or the default does with a request. Its String is the
// `action` label of cmg_gateway_policy_decisions_total.
type Action uint8

// The actions. Deny is the zero value, so a zero Decision refuses.
const (
	Deny Action = iota
	Allow
)

func (a Action) String() string {
	if a == Allow {
		return "allow"
	}
	return "deny"
}

// DefaultRule is the Rule of a Decision made by the default action. It is reserved:
// no rule may take this name.
const DefaultRule = "default"

// The authentication methods a rule matches on (the values of the gateway's
// authentication method, and of the `method` label of cmg_gateway_auth_total).
const (
	AuthCertificate = "certificate"
	AuthSiteToken   = "site_token"
	AuthOIDC        = "oidc"
)

// The role kinds a rule matches on (DESIGN section 7).
const (
	RoleManagementPoint     = "management_point"
	RoleSoftwareUpdatePoint = "software_update_point"
	RoleDistributionPoint   = "distribution_point"
)

// Request is what a policy decides on: an authenticated, routed device request.
// The gateway fills it from the verified identity and the route; it holds no
// client-supplied header.
type Request struct {
	// AuthMethod is how the device authenticated: AuthCertificate, AuthSiteToken
	// or AuthOIDC.
	AuthMethod string
	// CertSubject and CertIssuer are the client certificate's subject and issuer
	// distinguished names as Go's pkix.Name.String formats them
	// ("CN=device42,OU=Clients,O=Contoso", most specific first). For tokens the
	// gateway may pass the token's sub and iss.
	CertSubject string
	CertIssuer  string
	// Claims are the verified token's claims (nil for certificates).
	Claims map[string]any
	// Source is the device's address (from PROXY protocol when behind a load
	// balancer). The zero Addr matches no source or family condition.
	Source netip.Addr
	// RoleKind is the kind of the role the route leads to: RoleManagementPoint,
	// RoleSoftwareUpdatePoint or RoleDistributionPoint.
	RoleKind string
	// Path is the request's cleaned URL path, without the query.
	Path string
	// Device is the device identity; it keys the per-device limits.
	Device string
}

// Limits are the per-device limits of a rule. A zero field means no limit.
type Limits struct {
	// RequestsPerSecond and Burst are a token-bucket request rate per device.
	RequestsPerSecond float64
	Burst             int
	// BodyBytes caps the request body.
	BodyBytes int64
	// Concurrency caps the requests a device has in flight at once.
	Concurrency int
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// String describes the limits for people ("rate 10/s burst 20, body 64MiB,
// concurrency 4", or "no limits").
func (l Limits) String() string {
	var parts []string
	if l.RequestsPerSecond > 0 {
		parts = append(parts, "rate "+strconv.FormatFloat(l.RequestsPerSecond, 'g', -1, 64)+"/s burst "+strconv.Itoa(l.Burst))
	}
	if l.BodyBytes > 0 {
		parts = append(parts, "body "+FormatSize(l.BodyBytes))
	}
	if l.Concurrency > 0 {
		parts = append(parts, "concurrency "+strconv.Itoa(l.Concurrency))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

// Decision is the outcome of a policy for one request.
type Decision struct {
	// Rule is the name of the deciding rule, or DefaultRule. With Action it forms
	// the labels of cmg_gateway_policy_decisions_total (rule names are bounded by
	// the file).
	Rule   string
	Action Action
	// Limits are the deciding rule's per-device limits (none for a deny or the
	// default).
	Limits
	// Reason says in a sentence what decided; it is safe to show to the device as
	// an error detail.
	Reason string
}

// Allowed reports whether the request may proceed.
func (d Decision) Allowed() bool { return d.Action == Allow }

// Policy is a compiled policy file. It is immutable and safe for concurrent use.
type Policy struct {
	name      string
	dflt      Decision
	rules     []*rule
	budget    BudgetConfig
	hasBudget bool
}

// Name is the file the policy came from ("" for the built-in allow-all policy).
func (p *Policy) Name() string { return p.name }

// Default is the default action.
func (p *Policy) Default() Action { return p.dflt.Action }

// RuleNames lists the rules in order, then DefaultRule: every value the `rule`
// label can take under this policy, so metrics can create their series up front.
func (p *Policy) RuleNames() []string {
	names := make([]string, 0, len(p.rules)+1)
	for _, r := range p.rules {
		names = append(names, r.name)
	}
	return append(names, DefaultRule)
}

// RuleAction returns the action of the rule named name (DefaultRule: the
// default action), and false when there is no such rule.
func (p *Policy) RuleAction(name string) (Action, bool) {
	if name == DefaultRule {
		return p.dflt.Action, true
	}
	for _, r := range p.rules {
		if r.name == name {
			return r.decision.Action, true
		}
	}
	return Deny, false
}

// Budget returns the egress budget section, and false when the file has none.
func (p *Policy) Budget() (BudgetConfig, bool) { return p.budget, p.hasBudget }

// AllowAll returns the policy used when no policy file is configured: no rules and
// a default of allow (authentication and the route allow-list still apply).
func AllowAll() *Policy {
	return &Policy{dflt: defaultDecision(Allow)}
}

func defaultDecision(a Action) Decision {
	d := Decision{Rule: DefaultRule, Action: a}
	if a == Allow {
		d.Reason = "allowed by the policy's default action"
	} else {
		d.Reason = "denied by the policy's default action"
	}
	return d
}

// Decide returns the decision of the first rule that matches req, or of the
// default action. It does not allocate.
func (p *Policy) Decide(req *Request) Decision {
	src := req.Source.Unmap()
	for _, r := range p.rules {
		if r.match.matches(req, src) {
			return r.decision
		}
	}
	return p.dflt
}

// rule is one compiled rule.
type rule struct {
	name     string
	line     int
	match    matcher
	decision Decision
}

func newRule(name string, line int, m matcher, a Action, l Limits) *rule {
	d := Decision{Rule: name, Action: a, Limits: l}
	if a == Allow {
		d.Reason = "allowed by policy rule " + strconv.Quote(name)
	} else {
		d.Reason = "denied by policy rule " + strconv.Quote(name)
	}
	return &rule{name: name, line: line, match: m, decision: d}
}
