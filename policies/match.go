package policies

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// matcher is a rule's compiled match block. Every condition that is set must hold
// (AND); within one condition any listed value may match (OR). An empty matcher
// matches every request.
type matcher struct {
	auth    uint8 // bit set of authBit; 0 means any
	subject []textPattern
	issuer  []textPattern
	device  []textPattern
	claims  []claimMatcher
	sources []netip.Prefix
	family  family
	roles   uint8 // bit set of roleBit; 0 means any
	paths   []string
}

type family uint8

const (
	anyFamily family = iota
	ipv4
	ipv6
)

func (f family) String() string {
	switch f {
	case ipv4:
		return "ipv4"
	case ipv6:
		return "ipv6"
	}
	return "any"
}

var authMethods = []string{AuthCertificate, AuthSiteToken, AuthOIDC}

var roleKinds = []string{RoleManagementPoint, RoleSoftwareUpdatePoint, RoleDistributionPoint}

// bitOf returns the bit of s in names, or 0 when s is not one of them.
func bitOf(names []string, s string) uint8 {
	for i, n := range names {
		if n == s {
			return 1 << i
		}
	}
	return 0
}

func namesOf(names []string, bits uint8) []string {
	var out []string
	for i, n := range names {
		if bits&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func (m *matcher) isEmpty() bool {
	return m.auth == 0 && m.subject == nil && m.issuer == nil && m.device == nil &&
		m.claims == nil && m.sources == nil && m.family == anyFamily && m.roles == 0 && m.paths == nil
}

// matches reports whether req meets every condition; src is req.Source unmapped.
// The cheap, selective conditions go first.
func (m *matcher) matches(req *Request, src netip.Addr) bool {
	if m.auth != 0 && m.auth&bitOf(authMethods, req.AuthMethod) == 0 {
		return false
	}
	if m.roles != 0 && m.roles&bitOf(roleKinds, req.RoleKind) == 0 {
		return false
	}
	if m.family != anyFamily && !familyMatches(m.family, src) {
		return false
	}
	if m.sources != nil && !sourceMatches(m.sources, src) {
		return false
	}
	if m.paths != nil && !pathMatches(m.paths, req.Path) {
		return false
	}
	if m.subject != nil && !anyText(m.subject, req.CertSubject) {
		return false
	}
	if m.issuer != nil && !anyText(m.issuer, req.CertIssuer) {
		return false
	}
	if m.device != nil && !anyText(m.device, req.Device) {
		return false
	}
	for i := range m.claims {
		if !m.claims[i].matches(req.Claims) {
			return false
		}
	}
	return true
}

func familyMatches(f family, src netip.Addr) bool {
	switch f {
	case ipv4:
		return src.Is4()
	case ipv6:
		return src.Is6()
	}
	return true
}

func sourceMatches(prefixes []netip.Prefix, src netip.Addr) bool {
	if !src.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// pathMatches reports whether path starts with one of the prefixes, ignoring ASCII
// case: the roles behind the gateway (IIS) treat paths case-insensitively, so a
// case-sensitive deny could be walked around by changing case.
func pathMatches(prefixes []string, path string) bool {
	for _, p := range prefixes {
		if hasPrefixFold(path, p) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// textPattern matches a subject, issuer or device: a case-insensitive glob, or a
// regular expression (the "re:" form) that must match the whole text.
type textPattern struct {
	src  string         // as written in the file
	glob string         // when re is nil
	re   *regexp.Regexp // anchored
}

// compileText compiles one pattern as written in the policy file.
func compileText(s string) (textPattern, error) {
	if expr, ok := strings.CutPrefix(s, "re:"); ok {
		if _, err := regexp.Compile(expr); err != nil {
			return textPattern{}, err // reported without the anchoring added below
		}
		re, err := regexp.Compile(`^(?:` + expr + `)$`)
		if err != nil {
			return textPattern{}, err
		}
		return textPattern{src: s, re: re}, nil
	}
	return textPattern{src: s, glob: s}, nil
}

func (t *textPattern) match(s string) bool {
	if t.re != nil {
		return t.re.MatchString(s)
	}
	return globMatch(t.glob, s)
}

func anyText(ps []textPattern, s string) bool {
	for i := range ps {
		if ps[i].match(s) {
			return true
		}
	}
	return false
}

// claimMatcher requires a token claim to hold one of the allowed values. A claim
// that is a list matches when any element does. Strings compare exactly; numbers
// compare by value with the allowed values that are numbers (2, 2.0 and "2" are
// the same), booleans as "true" and "false".
type claimMatcher struct {
	name    string
	allowed []string
	nums    []float64 // the allowed values that parse as numbers
}

func newClaimMatcher(name string, allowed []string) claimMatcher {
	c := claimMatcher{name: name, allowed: allowed}
	for _, a := range allowed {
		if f, err := strconv.ParseFloat(a, 64); err == nil {
			c.nums = append(c.nums, f)
		}
	}
	return c
}

func (c *claimMatcher) matches(claims map[string]any) bool {
	v, ok := claims[c.name]
	if !ok {
		return false
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if c.scalarMatches(e) {
				return true
			}
		}
		return false
	case []string:
		for _, e := range x {
			if c.has(e) {
				return true
			}
		}
		return false
	}
	return c.scalarMatches(v)
}

// scalarMatches compares one claim value without allocating.
func (c *claimMatcher) scalarMatches(v any) bool {
	switch x := v.(type) {
	case string:
		return c.has(x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return err == nil && c.hasNum(f)
	case bool:
		return c.has(strconv.FormatBool(x))
	case float64:
		return c.hasNum(x)
	case int:
		return c.hasNum(float64(x))
	case int64:
		return c.hasNum(float64(x))
	}
	return false
}

func (c *claimMatcher) has(s string) bool {
	for _, a := range c.allowed {
		if a == s {
			return true
		}
	}
	return false
}

func (c *claimMatcher) hasNum(f float64) bool {
	for _, n := range c.nums {
		if n == f {
			return true
		}
	}
	return false
}
