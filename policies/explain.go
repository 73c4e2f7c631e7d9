package policies

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Trace is how a policy decided a request: every rule tried, in order, and the
// decision. It is what `cmg policy explain` prints.
type Trace struct {
	Policy   string // the policy file
	Steps    []Step
	Decision Decision
}

// Step is one rule tried.
type Step struct {
	Rule    string
	Line    int
	Matched bool
	// Mismatches says, for a rule that did not match, every condition that failed.
	Mismatches []string
}

// Explain decides req like Decide and records why each rule tried did or did not
// match. It is for people: it allocates.
func (p *Policy) Explain(req *Request) Trace {
	t := Trace{Policy: p.name}
	src := req.Source.Unmap()
	for _, r := range p.rules {
		why := r.match.explain(req, src)
		t.Steps = append(t.Steps, Step{Rule: r.name, Line: r.line, Matched: len(why) == 0, Mismatches: why})
		if len(why) == 0 {
			t.Decision = r.decision
			return t
		}
	}
	t.Decision = p.dflt
	return t
}

// String renders the trace, one line per rule tried, then the decision.
func (t Trace) String() string {
	var b strings.Builder
	if len(t.Steps) == 0 {
		b.WriteString("no rules\n")
	}
	for _, s := range t.Steps {
		fmt.Fprintf(&b, "rule %q (line %d): ", s.Rule, s.Line)
		if s.Matched {
			b.WriteString("matches\n")
			continue
		}
		b.WriteString("no match\n")
		for _, m := range s.Mismatches {
			fmt.Fprintf(&b, "    - %s\n", m)
		}
	}
	d := t.Decision
	if d.Rule == DefaultRule {
		fmt.Fprintf(&b, "decision: %s by the default action\n", d.Action)
	} else {
		fmt.Fprintf(&b, "decision: %s by rule %q\n", d.Action, d.Rule)
	}
	if d.Action == Allow {
		fmt.Fprintf(&b, "limits: %s\n", d.Limits)
	}
	fmt.Fprintf(&b, "reason: %s\n", d.Reason)
	return b.String()
}

// explain returns every failed condition of the matcher for req (none when it
// matches), in the order the conditions are documented.
func (m *matcher) explain(req *Request, src netip.Addr) []string {
	var why []string
	if m.auth != 0 && m.auth&bitOf(authMethods, req.AuthMethod) == 0 {
		why = append(why, fmt.Sprintf("auth method %s is not %s", quoteOrNone(req.AuthMethod), orList(quoteAll(namesOf(authMethods, m.auth)))))
	}
	why = explainText(why, "subject", m.subject, req.CertSubject)
	why = explainText(why, "issuer", m.issuer, req.CertIssuer)
	why = explainText(why, "device", m.device, req.Device)
	for i := range m.claims {
		c := &m.claims[i]
		if c.matches(req.Claims) {
			continue
		}
		v, ok := req.Claims[c.name]
		if !ok {
			why = append(why, fmt.Sprintf("claim %q is missing (wanted %s)", c.name, orList(quoteAll(c.allowed))))
			continue
		}
		why = append(why, fmt.Sprintf("claim %q is %s, not %s", c.name, claimString(v), orList(quoteAll(c.allowed))))
	}
	if m.sources != nil && !sourceMatches(m.sources, src) {
		why = append(why, fmt.Sprintf("source %s is in none of %s", addrString(src), prefixList(m.sources)))
	}
	if m.family != anyFamily && !familyMatches(m.family, src) {
		why = append(why, fmt.Sprintf("source %s is not %s", addrString(src), m.family))
	}
	if m.roles != 0 && m.roles&bitOf(roleKinds, req.RoleKind) == 0 {
		why = append(why, fmt.Sprintf("role %s is not %s", quoteOrNone(req.RoleKind), orList(quoteAll(namesOf(roleKinds, m.roles)))))
	}
	if m.paths != nil && !pathMatches(m.paths, req.Path) {
		why = append(why, fmt.Sprintf("path %q starts with none of %s", req.Path, strings.Join(quoteAll(m.paths), ", ")))
	}
	return why
}

func explainText(why []string, what string, ps []textPattern, s string) []string {
	if ps == nil || anyText(ps, s) {
		return why
	}
	srcs := make([]string, len(ps))
	for i := range ps {
		srcs[i] = strconv.Quote(ps[i].src)
	}
	return append(why, fmt.Sprintf("%s %s matches none of %s", what, quoteOrNone(s), strings.Join(srcs, ", ")))
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return strconv.Quote(s)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func orList(ss []string) string {
	if len(ss) == 1 {
		return ss[0]
	}
	return "one of " + strings.Join(ss, ", ")
}

func prefixList(ps []netip.Prefix) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = p.String()
	}
	return strings.Join(ss, ", ")
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "(none)"
	}
	return a.String()
}

func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any, []string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}
