package policies

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// matcher compiles a rule's match block. An empty block ({}) matches every
// request.
func (p *parser) matcher(n *yaml.Node, path string) (matcher, bool) {
	var m matcher
	fields := p.mapping(n, path, "auth", "subject", "issuer", "device", "claims", "source", "family", "role", "path_prefix")
	if fields == nil {
		return m, false
	}
	ok := true
	check := func(good bool) { ok = ok && good }
	if v := fields.get("auth"); v != nil {
		var good bool
		m.auth, good = p.enumSet(v, path+".auth", authMethods, "auth method")
		check(good)
	}
	if v := fields.get("role"); v != nil {
		var good bool
		m.roles, good = p.enumSet(v, path+".role", roleKinds, "role kind")
		check(good)
	}
	for _, tf := range []struct {
		key string
		dst *[]textPattern
	}{{"subject", &m.subject}, {"issuer", &m.issuer}, {"device", &m.device}} {
		if v := fields.get(tf.key); v != nil {
			var good bool
			*tf.dst, good = p.textPatterns(v, path+"."+tf.key)
			check(good)
		}
	}
	if v := fields.get("claims"); v != nil {
		var good bool
		m.claims, good = p.claims(v, path+".claims")
		check(good)
	}
	if v := fields.get("source"); v != nil {
		var good bool
		m.sources, good = p.prefixes(v, path+".source")
		check(good)
	}
	if v := fields.get("family"); v != nil {
		var good bool
		m.family, good = p.family(v, path+".family")
		check(good)
	}
	if v := fields.get("path_prefix"); v != nil {
		var good bool
		m.paths, good = p.pathPrefixes(v, path+".path_prefix")
		check(good)
	}
	return m, ok
}

// enumSet compiles a value or list of values taken from names into a bit set.
func (p *parser) enumSet(n *yaml.Node, path string, names []string, what string) (uint8, bool) {
	vals, ok := p.list(n, path)
	var set uint8
	for _, v := range vals {
		bit := bitOf(names, v.Value)
		if bit == 0 {
			p.addf(v, path, "unknown %s %q: want one of %s", what, v.Value, strings.Join(names, ", "))
			ok = false
			continue
		}
		set |= bit
	}
	return set, ok
}

func (p *parser) textPatterns(n *yaml.Node, path string) ([]textPattern, bool) {
	vals, ok := p.list(n, path)
	out := make([]textPattern, 0, len(vals))
	for _, v := range vals {
		if v.Value == "" || v.Value == "re:" {
			p.addf(v, path, "an empty pattern; use \"*\" to match any value")
			ok = false
			continue
		}
		t, err := compileText(v.Value)
		if err != nil {
			p.addf(v, path, "bad regular expression %q: %v", strings.TrimPrefix(v.Value, "re:"), unwrapRegexpErr(err))
			ok = false
			continue
		}
		out = append(out, t)
	}
	return out, ok
}

// unwrapRegexpErr drops the "error parsing regexp: " prefix, which repeats what
// the message already says.
func unwrapRegexpErr(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// claims compiles "claims: {name: value-or-list}". Claims are checked in the
// order of their names, so Explain is stable.
func (p *parser) claims(n *yaml.Node, path string) ([]claimMatcher, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.addf(n, path, "must be a mapping of claim names to allowed values, not %s", kindName(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		p.addf(n, path, "no claims: leave the key out to match any token")
		return nil, false
	}
	ok := true
	seen := map[string]int{}
	var out []claimMatcher
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) || k.Value == "" || k.Tag == "!!merge" {
			p.addf(k, path, "a claim name must be a plain, non-empty name")
			ok = false
			continue
		}
		cp := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			p.addf(k, cp, "claim %q is given twice (first on line %d)", k.Value, first)
			ok = false
			continue
		}
		seen[k.Value] = k.Line
		vals, good := p.list(v, cp)
		ok = ok && good
		allowed := make([]string, len(vals))
		for i, e := range vals {
			allowed[i] = e.Value
		}
		out = append(out, newClaimMatcher(k.Value, allowed))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, ok
}

// prefixes compiles source CIDRs. A bare address is a one-address prefix; a
// prefix with host bits set is a problem, because it is usually a typo for the
// network (10.0.0.1/8 for 10.0.0.0/8).
func (p *parser) prefixes(n *yaml.Node, path string) ([]netip.Prefix, bool) {
	vals, ok := p.list(n, path)
	out := make([]netip.Prefix, 0, len(vals))
	for _, v := range vals {
		pfx, err := parsePrefix(v.Value)
		if err != nil {
			p.addf(v, path, "%v", err)
			ok = false
			continue
		}
		out = append(out, pfx)
	}
	return out, ok
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address or a prefix like 10.0.0.0/8 or 2001:db8::/32", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want a prefix like 10.0.0.0/8 or 2001:db8::/32", s)
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: host bits are set (did you mean %s?)", s, m)
	}
	if pfx.Addr().Is4In6() {
		// Sources are compared unmapped, so an IPv4-mapped range is its IPv4
		// range. (Shorter than /96 it would have host bits set, refused above.)
		return netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96), nil
	}
	return pfx, nil
}

func (p *parser) family(n *yaml.Node, path string) (family, bool) {
	s, ok := p.scalar(n, path)
	if !ok {
		return anyFamily, false
	}
	switch s {
	case "ipv4":
		return ipv4, true
	case "ipv6":
		return ipv6, true
	}
	p.addf(n, path, "unknown address family %q: want ipv4 or ipv6", s)
	return anyFamily, false
}

func (p *parser) pathPrefixes(n *yaml.Node, path string) ([]string, bool) {
	vals, ok := p.list(n, path)
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if !strings.HasPrefix(v.Value, "/") {
			p.addf(v, path, "path prefix %q must start with /", v.Value)
			ok = false
			continue
		}
		out = append(out, v.Value)
	}
	return out, ok
}
