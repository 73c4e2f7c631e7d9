package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cmg-gateway/cmg/configfile"
)

// Limits of a policy file. Rule names become metric label values, so their number
// is bounded here.
const (
	MaxRules    = 256
	MaxFileSize = 1 << 20
	maxNameLen  = 64
)

// Version is the policy file format version this package reads.
const Version = 1

// Load reads and compiles the policy file at path. The error is a
// *configfile.Problems listing every problem with its line.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Check reports every problem of a policy file at once, or nil when it is valid.
// The error is a *configfile.Problems whose problems carry their lines.
func Check(name string, data []byte) error {
	_, err := Parse(name, data)
	return err
}

// Parse compiles a policy file. Decoding is strict: an unknown key, a key given
// twice, a value of the wrong kind or an unusable value are problems, and every
// problem is reported (as a *configfile.Problems, sorted by line), not just the
// first.
func Parse(name string, data []byte) (*Policy, error) {
	p := &parser{ps: configfile.Problems{File: name}}
	pol := p.parse(name, data)
	if err := p.err(); err != nil {
		return nil, err
	}
	return pol, nil
}

type parser struct {
	ps configfile.Problems
}

func (p *parser) addf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.ps.List = append(p.ps.List, configfile.Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error {
	sort.SliceStable(p.ps.List, func(i, j int) bool { return p.ps.List[i].Line < p.ps.List[j].Line })
	return p.ps.Err()
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func (p *parser) parse(name string, data []byte) *Policy {
	if len(data) > MaxFileSize {
		p.addf(nil, "", "the file is larger than %s", FormatSize(MaxFileSize))
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.addf(nil, "", "the file is empty")
			return nil
		}
		p.syntax(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.addf(&extra, "", "only one YAML document is allowed")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.addf(nil, "", "the file is empty")
		return nil
	}
	root := doc.Content[0]
	return p.policy(name, root)
}

// syntax records a YAML syntax error, taking its line from the message.
func (p *parser) syntax(err error) {
	msg := err.Error()
	if g := yamlLine.FindStringSubmatch(msg); g != nil {
		n, _ := strconv.Atoi(g[1])
		p.ps.List = append(p.ps.List, configfile.Problem{Line: n, Msg: g[2]})
		return
	}
	p.addf(nil, "", "%s", strings.TrimPrefix(msg, "yaml: "))
}

func (p *parser) policy(name string, root *yaml.Node) *Policy {
	pol := &Policy{name: name}
	fields := p.mapping(root, "", "version", "default", "rules", "egress_budget")
	if fields == nil {
		return pol
	}
	if v, ok := fields.require(p, root, "", "version"); ok {
		if n, ok := p.integer(v, "version"); ok && n != Version {
			p.addf(v, "version", "unsupported version %d: this cmg reads version %d", n, Version)
		}
	}
	pol.dflt = defaultDecision(Deny)
	if v, ok := fields.require(p, root, "", "default"); ok {
		if a, ok := p.action(v, "default"); ok {
			pol.dflt = defaultDecision(a)
		}
	}
	if v := fields.get("rules"); v != nil {
		pol.rules = p.rules(v)
	}
	if v := fields.get("egress_budget"); v != nil {
		pol.budget, pol.hasBudget = p.budget(v)
	}
	return pol
}

func (p *parser) rules(n *yaml.Node) []*rule {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "rules", "must be a list of rules")
		return nil
	}
	if len(n.Content) > MaxRules {
		p.addf(n, "rules", "%d rules: at most %d are allowed (rule names are metric labels)", len(n.Content), MaxRules)
	}
	var out []*rule
	names := map[string]int{} // name → line of first use
	var catchAll *rule
	for i, rn := range n.Content {
		path := fmt.Sprintf("rules[%d]", i)
		r, nameNode := p.rule(deref(rn), path)
		if r == nil {
			continue
		}
		if first, dup := names[r.name]; dup {
			p.addf(nameNode, path+".name", "duplicate rule name %q (first used on line %d)", r.name, first)
		} else {
			names[r.name] = nameNode.Line
		}
		if catchAll != nil {
			p.addf(rn, path, "rule %q is never reached: rule %q (line %d) before it matches every request", r.name, catchAll.name, catchAll.line)
		} else if r.match.isEmpty() {
			catchAll = r
		}
		out = append(out, r)
	}
	return out
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// rule compiles one rule. It returns the rule and its name's node; a rule with
// problems comes back as a placeholder that only carries the name (so later rules
// are still checked for duplicates), or nil when it has no usable name.
func (p *parser) rule(n *yaml.Node, path string) (*rule, *yaml.Node) {
	fields := p.mapping(n, path, "name", "match", "action", "rate_limit", "body_limit", "concurrency")
	if fields == nil {
		return nil, nil
	}
	ok := true
	var name string
	nameNode := fields.get("name")
	if v, found := fields.require(p, n, path, "name"); found {
		name, found = p.scalar(v, path+".name")
		switch {
		case !found:
			ok = false
		case len(name) > maxNameLen || !ruleName.MatchString(name):
			p.addf(v, path+".name", "rule name %q must be 1 to %d letters, digits, '_', '.' or '-', starting with a letter or digit", name, maxNameLen)
			ok = false
		case name == DefaultRule:
			p.addf(v, path+".name", "the rule name %q is reserved for the default action", DefaultRule)
			ok = false
		}
	} else {
		ok = false
	}
	var m matcher
	matchOK := false
	if v, found := fields.require(p, n, path, "match"); found {
		m, matchOK = p.matcher(v, path+".match")
	}
	ok = ok && matchOK
	action := Deny
	if v, found := fields.require(p, n, path, "action"); found {
		var aok bool
		action, aok = p.action(v, path+".action")
		ok = ok && aok
	} else {
		ok = false
	}
	limits, lok := p.limits(fields, path)
	if action == Deny {
		for _, k := range []string{"rate_limit", "body_limit", "concurrency"} {
			if kn := fields.keys[k]; kn != nil {
				p.addf(kn, path+"."+k, "a deny rule cannot have %s: limits apply to allowed requests", k)
				ok = false
			}
		}
	}
	if !ok || !lok {
		if name == "" {
			return nil, nil
		}
		if matchOK && m.isEmpty() {
			// Keep a valid catch-all a catch-all, so the rules after it are
			// still reported as unreachable.
			return &rule{name: name, line: n.Line}, nameNode
		}
		return &rule{name: name, line: n.Line, match: matcher{auth: 0xff}}, nameNode
	}
	return newRule(name, n.Line, m, action, limits), nameNode
}

func (p *parser) action(n *yaml.Node, path string) (Action, bool) {
	s, ok := p.scalar(n, path)
	if !ok {
		return Deny, false
	}
	switch s {
	case "allow":
		return Allow, true
	case "deny":
		return Deny, true
	}
	p.addf(n, path, "unknown action %q: want allow or deny", s)
	return Deny, false
}

func (p *parser) limits(fields *pairs, path string) (Limits, bool) {
	var l Limits
	ok := true
	if v := fields.get("rate_limit"); v != nil {
		rp := path + ".rate_limit"
		rf := p.mapping(v, rp, "requests_per_second", "burst")
		if rf == nil {
			ok = false
		} else {
			if rv, found := rf.require(p, deref(v), rp, "requests_per_second"); found {
				f, fok := p.number(rv, rp+".requests_per_second")
				if fok && (f <= 0 || f > 1e6) {
					p.addf(rv, rp+".requests_per_second", "must be more than 0 and at most 1000000, not %v", f)
					fok = false
				}
				l.RequestsPerSecond = f
				ok = ok && fok
			} else {
				ok = false
			}
			l.Burst = int(math.Max(1, math.Ceil(l.RequestsPerSecond)))
			if bv := rf.get("burst"); bv != nil {
				b, bok := p.positiveInt(bv, rp+".burst")
				l.Burst = b
				ok = ok && bok
			}
		}
	}
	if v := fields.get("body_limit"); v != nil {
		if s, sok := p.scalar(v, path+".body_limit"); sok {
			n, err := ParseSize(s)
			switch {
			case err != nil:
				p.addf(v, path+".body_limit", "%v", err)
				ok = false
			case n <= 0:
				p.addf(v, path+".body_limit", "must be more than 0 bytes")
				ok = false
			}
			l.BodyBytes = n
		} else {
			ok = false
		}
	}
	if v := fields.get("concurrency"); v != nil {
		c, cok := p.positiveInt(v, path+".concurrency")
		l.Concurrency = c
		ok = ok && cok
	}
	if !ok {
		return Limits{}, false
	}
	return l, true
}

func (p *parser) budget(n *yaml.Node) (BudgetConfig, bool) {
	const path = "egress_budget"
	cfg := BudgetConfig{Window: DefaultBudgetWindow, Warning: DefaultBudgetWarning, Critical: DefaultBudgetCritical}
	fields := p.mapping(n, path, "bytes", "window", "warning", "critical", "stop_on_critical")
	if fields == nil {
		return cfg, false
	}
	n = deref(n)
	if v, ok := fields.require(p, n, path, "bytes"); ok {
		if s, ok := p.scalar(v, path+".bytes"); ok {
			b, err := ParseSize(s)
			switch {
			case err != nil:
				p.addf(v, path+".bytes", "%v", err)
			case b <= 0:
				p.addf(v, path+".bytes", "must be more than 0 bytes")
			}
			cfg.Bytes = b
		}
	}
	if v := fields.get("window"); v != nil {
		if s, ok := p.scalar(v, path+".window"); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				p.addf(v, path+".window", "not a duration (like 336h): %q", s)
			case d < time.Hour || d > 8784*time.Hour:
				p.addf(v, path+".window", "must be between 1h and 8784h (a year), not %s", s)
			default:
				cfg.Window = d
			}
		}
	}
	warnOK, critOK := true, true
	if v := fields.get("warning"); v != nil {
		cfg.Warning, warnOK = p.fraction(v, path+".warning")
	}
	if v := fields.get("critical"); v != nil {
		cfg.Critical, critOK = p.fraction(v, path+".critical")
	}
	if warnOK && critOK && cfg.Warning >= cfg.Critical {
		at, key := fields.get("warning"), path+".warning"
		if at == nil {
			at, key = fields.get("critical"), path+".critical"
		}
		p.addf(at, key, "warning (%v) must be below critical (%v)", cfg.Warning, cfg.Critical)
	}
	if v := fields.get("stop_on_critical"); v != nil {
		cfg.StopOnCritical, _ = p.boolean(v, path+".stop_on_critical")
	}
	return cfg, true
}

func (p *parser) fraction(n *yaml.Node, path string) (float64, bool) {
	f, ok := p.number(n, path)
	if !ok {
		return 0, false
	}
	if f <= 0 || f > 1 {
		p.addf(n, path, "must be a fraction above 0 and at most 1 (0.9 is 90 %%), not %v", f)
		return 0, false
	}
	return f, true
}

// pairs are the key/value pairs of a mapping, checked for unknown and repeated
// keys.
type pairs struct {
	keys map[string]*yaml.Node // key → its key node
	vals map[string]*yaml.Node
}

func (f *pairs) get(key string) *yaml.Node { return f.vals[key] }

// require returns the value of a key that must be present, reporting its absence
// on the mapping's line.
func (f *pairs) require(p *parser, m *yaml.Node, path, key string) (*yaml.Node, bool) {
	v := f.vals[key]
	if v == nil {
		p.addf(m, path, "missing %s", key)
		return nil, false
	}
	return v, true
}

// mapping checks that n is a mapping with only the known keys, each once, and
// returns its pairs (nil when n is not a mapping).
func (p *parser) mapping(n *yaml.Node, path string, known ...string) *pairs {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		what := path
		if what == "" {
			what = "the policy"
		}
		p.addf(n, path, "%s must be a mapping of keys to values, not %s", what, kindName(n))
		return nil
	}
	f := &pairs{keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		kp := joinKey(path, key)
		switch {
		case k.Kind != yaml.ScalarNode:
			p.addf(k, path, "a key must be a plain name")
			continue
		case k.Tag == "!!merge":
			p.addf(k, path, "merge keys (<<) are not supported; use an alias (*name) for a whole value")
			continue
		case !contains(known, key):
			p.addf(k, kp, "unknown key %q (known: %s)", key, strings.Join(known, ", "))
			continue
		}
		if first, dup := f.keys[key]; dup {
			p.addf(k, kp, "key %q is given twice (first on line %d)", key, first.Line)
			continue
		}
		f.keys[key], f.vals[key] = k, v
	}
	return f
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar returns the text of a scalar value; null, lists and mappings are problems.
func (p *parser) scalar(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.addf(n, path, "must be a single value, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// list returns the values of a key that takes one value or a list of them, each a
// scalar. An empty list is a problem: it would match nothing.
func (p *parser) list(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return []*yaml.Node{n}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.addf(n, path, "must be a value or a list of values, not %s", kindName(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		p.addf(n, path, "an empty list matches nothing; leave the key out to match any value")
		return nil, false
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	ok := true
	for i, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			p.addf(e, fmt.Sprintf("%s[%d]", path, i), "must be a single value, not %s", kindName(e))
			ok = false
			continue
		}
		out = append(out, e)
	}
	return out, ok
}

func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	s, ok := p.scalar(n, path)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || deref(n).Tag != "!!int" {
		p.addf(n, path, "not a whole number: %q", s)
		return 0, false
	}
	return v, true
}

func (p *parser) positiveInt(n *yaml.Node, path string) (int, bool) {
	v, ok := p.integer(n, path)
	if !ok {
		return 0, false
	}
	if v < 1 || v > 1e6 {
		p.addf(n, path, "must be between 1 and 1000000, not %d", v)
		return 0, false
	}
	return v, true
}

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	s, ok := p.scalar(n, path)
	if !ok {
		return 0, false
	}
	tag := deref(n).Tag
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || (tag != "!!int" && tag != "!!float") || math.IsNaN(f) || math.IsInf(f, 0) {
		p.addf(n, path, "not a number: %q", s)
		return 0, false
	}
	return f, true
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := p.scalar(n, path)
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.addf(n, path, "must be true or false, not %q", s)
	return false, false
}

// deref follows aliases to the anchored node. Anchors are defined before their
// aliases and cannot contain themselves, so the loop ends; the bound is a guard.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
