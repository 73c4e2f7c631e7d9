package profile

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/metrics/cost"
)

// The habit sets a profile carries (the -habits switch).
const (
	// Original is the original product's connection habits: a new TLS
	// connection (full handshake, RSA-2048 chain with an intermediate) for each
	// exchange, notification renewals every 15 minutes as plain requests.
	Original = "original"
	// CMG is cmg's own habits: keep-alive, TLS session resumption, one
	// notification channel per device instead of renewals.
	CMG = "cmg"
)

// Auth modes: whether a bearer token rides on every request.
const (
	// AuthToken is a token client (Azure AD or site token): the CCM token goes
	// with every request.
	AuthToken = "token"
	// AuthCertificate is a PKI client: mutual TLS, no bearer header.
	AuthCertificate = "certificate"
)

// Profile is a traffic profile: the message classes of a simulated device, the
// fixed per-exchange costs of the model and the two habit sets.
type Profile struct {
	// Name names the profile in reports.
	Name string `yaml:"name"`
	// Base, in a profile file, names the built-in profile the file starts from;
	// keys the file leaves out keep the base's values (a classes list replaces
	// the base's list whole).
	Base string `yaml:"base,omitempty"`
	// Note says where the figures come from.
	Note string `yaml:"note,omitempty"`
	// Habits is the habit set a run uses: original or cmg.
	Habits string `yaml:"habits"`
	// Auth is token or certificate.
	Auth string `yaml:"auth"`
	// OriginalHabits and CMGHabits are the two habit sets.
	OriginalHabits Habits `yaml:"original_habits"`
	CMGHabits      Habits `yaml:"cmg_habits"`
	// Fixed are the model's fixed costs per exchange.
	Fixed Fixed `yaml:"fixed"`
	// Classes are the message classes.
	Classes []Class `yaml:"classes"`
}

// Habits is how a device uses connections.
type Habits struct {
	// ConnectionPerExchange closes the connection after each exchange (a class's
	// occurrence with its follow-up exchanges), so the next one opens a new TLS
	// connection.
	ConnectionPerExchange bool `yaml:"connection_per_exchange"`
	// KeepAliveIdle is how long (simulated time) a device keeps an idle
	// connection for the next exchange; it should stay under the gateway's
	// idle timeout. Ignored with ConnectionPerExchange.
	KeepAliveIdle Duration `yaml:"keepalive_idle"`
	// TLSResumption offers session tickets so that a new connection can resume.
	TLSResumption bool `yaml:"tls_resumption"`
	// ResumedShare is the model's share of new connections that resume (the
	// load balancer may send a device to an instance that cannot resume it).
	ResumedShare float64 `yaml:"resumed_share"`
	// MaxTLSVersion is "1.2" or "1.3": the newest version the device offers.
	MaxTLSVersion string `yaml:"max_tls_version"`
	// ServerChain is the server chain the habits assume (reported against what
	// the gateway showed): "rsa2048-intermediate" or "any".
	ServerChain string `yaml:"server_chain"`
}

// TLSVersion is MaxTLSVersion as a crypto/tls constant.
func (h Habits) TLSVersion() uint16 {
	if h.MaxTLSVersion == "1.2" {
		return 0x0303
	}
	return 0x0304
}

// Fixed are the fixed costs of one exchange in the model (client-traffic.md
// section 6: 9.0 KB on a new connection, 3.0 KB on a reused one).
type Fixed struct {
	// TLSFullHandshake is what a full handshake sends to the device.
	TLSFullHandshake cost.Bytes `yaml:"tls_full_handshake"`
	// TLSResumedHandshake is what a resumed handshake sends to the device.
	TLSResumedHandshake cost.Bytes `yaml:"tls_resumed_handshake"`
	// RequestHeaders are the request line and headers the site receives,
	// including BearerToken for token clients.
	RequestHeaders cost.Bytes `yaml:"request_headers"`
	// BearerToken is the part of RequestHeaders a certificate client does not send.
	BearerToken cost.Bytes `yaml:"bearer_token"`
	// ResponseHeaders are the status line and headers the device receives.
	ResponseHeaders cost.Bytes `yaml:"response_headers"`
	// TunnelFraming is the tunnel's framing per exchange towards the site.
	TunnelFraming cost.Bytes `yaml:"tunnel_framing"`
}

// Class is one message class: what a device sends, how often and how large.
type Class struct {
	// Name names the class (unique in the profile).
	Name string `yaml:"name"`
	// Kind says which exchange the device performs (see Kinds).
	Kind Kind `yaml:"kind"`
	// PerMonth is how many times a month a device sends it; Interval is the
	// same as a period (give one). A class that Follows another gives PerMonth.
	PerMonth float64  `yaml:"per_month,omitempty"`
	Interval Duration `yaml:"interval,omitempty"`
	// Follows names the class whose connection this one rides right after
	// (policy bodies after a policy poll): it opens no connection of its own.
	Follows string `yaml:"follows,omitempty"`
	// Exchanges is the number of HTTP exchanges of one occurrence.
	Exchanges int `yaml:"exchanges"`
	// Items is a kind-specific count per exchange (revisions asked per
	// GetExtendedUpdateInfo call).
	Items int `yaml:"items,omitempty"`
	// Request and Response are the body bytes of one occurrence, all its
	// exchanges together: Request is sent to the site, Response to the device.
	// The device builds requests of this size; the site decides the replies,
	// so Response is the model's figure for it.
	Request  cost.Bytes `yaml:"request"`
	Response cost.Bytes `yaml:"response"`
	// Jitter spreads each occurrence around its slot, as a fraction of the
	// period (0: strictly periodic; 1: anywhere in the period).
	Jitter float64 `yaml:"jitter"`
	// Habits limits the class to one habit set ("original" or "cmg"); empty
	// runs it under both.
	Habits string `yaml:"habits,omitempty"`
	// Note says where the figures come from.
	Note string `yaml:"note,omitempty"`
}

// Monthly is the class's occurrences per month.
func (c Class) Monthly() float64 {
	if c.Interval > 0 {
		return float64(Month) / float64(c.Interval)
	}
	return c.PerMonth
}

// Period is the time between occurrences (0 when the class never occurs).
func (c Class) Period() time.Duration {
	n := c.Monthly()
	if n <= 0 {
		return 0
	}
	return time.Duration(float64(Month) / n)
}

// RunsUnder reports whether the class belongs to the habit set.
func (c Class) RunsUnder(habits string) bool { return c.Habits == "" || c.Habits == habits }

// HabitsFor returns the habit set of that name.
func (p *Profile) HabitsFor(name string) Habits {
	if name == CMG {
		return p.CMGHabits
	}
	return p.OriginalHabits
}

// Class returns the class of that name.
func (p *Profile) Class(name string) (Class, bool) {
	for _, c := range p.Classes {
		if c.Name == name {
			return c, true
		}
	}
	return Class{}, false
}

// Clone returns a deep copy.
func (p *Profile) Clone() *Profile {
	q := *p
	q.Classes = append([]Class(nil), p.Classes...)
	return &q
}

// Validate reports every problem at once as a *configfile.Problems.
func (p *Profile) Validate() error {
	var ps configfile.Problems
	if p.Name == "" {
		ps.Addf("name", "required")
	}
	if p.Habits != Original && p.Habits != CMG {
		ps.Addf("habits", "must be %s or %s, not %q", Original, CMG, p.Habits)
	}
	if p.Auth != AuthToken && p.Auth != AuthCertificate {
		ps.Addf("auth", "must be %s or %s, not %q", AuthToken, AuthCertificate, p.Auth)
	}
	p.OriginalHabits.validate(&ps, "original_habits")
	p.CMGHabits.validate(&ps, "cmg_habits")
	p.Fixed.validate(&ps)
	if len(p.Classes) == 0 {
		ps.Addf("classes", "at least one class is required")
	}
	names := map[string]int{}
	for i, c := range p.Classes {
		path := "classes[" + strconv.Itoa(i) + "]"
		if c.Name == "" {
			ps.Addf(path+".name", "required")
		} else if j, dup := names[c.Name]; dup {
			ps.Addf(path+".name", "%q is also classes[%d]", c.Name, j)
		}
		names[c.Name] = i
		c.validate(&ps, path)
	}
	for i, c := range p.Classes {
		if c.Follows == "" {
			continue
		}
		path := "classes[" + strconv.Itoa(i) + "].follows"
		l, ok := p.Class(c.Follows)
		switch {
		case !ok:
			ps.Addf(path, "no class is named %q", c.Follows)
		case l.Follows != "":
			ps.Addf(path, "%q follows another class itself; follow a class with its own schedule", c.Follows)
		case l.Habits != "" && l.Habits != c.Habits:
			ps.Addf(path, "%q runs only under %s habits; so must this class", c.Follows, l.Habits)
		case l.Monthly() == 0 && c.Monthly() > 0:
			ps.Addf(path, "%q never occurs, so this class could not either", c.Follows)
		}
	}
	return ps.Err()
}

func (h Habits) validate(ps *configfile.Problems, path string) {
	if h.MaxTLSVersion != "1.2" && h.MaxTLSVersion != "1.3" {
		ps.Addf(path+".max_tls_version", `must be "1.2" or "1.3", not %q`, h.MaxTLSVersion)
	}
	if h.KeepAliveIdle < 0 {
		ps.Addf(path+".keepalive_idle", "must not be negative")
	}
	if !(h.ResumedShare >= 0 && h.ResumedShare <= 1) {
		ps.Addf(path+".resumed_share", "must be between 0 and 1, not %v", h.ResumedShare)
	}
	if h.ResumedShare > 0 && !h.TLSResumption {
		ps.Addf(path+".resumed_share", "needs tls_resumption")
	}
	switch h.ServerChain {
	case "any", "rsa2048-intermediate":
	default:
		ps.Addf(path+".server_chain", `must be "any" or "rsa2048-intermediate", not %q`, h.ServerChain)
	}
}

func (f Fixed) validate(ps *configfile.Problems) {
	for _, b := range []struct {
		key string
		v   cost.Bytes
	}{
		{"tls_full_handshake", f.TLSFullHandshake}, {"tls_resumed_handshake", f.TLSResumedHandshake},
		{"request_headers", f.RequestHeaders}, {"bearer_token", f.BearerToken},
		{"response_headers", f.ResponseHeaders}, {"tunnel_framing", f.TunnelFraming},
	} {
		if b.v < 0 || b.v > 1e6 {
			ps.Addf("fixed."+b.key, "must be between 0 and 1 MB, not %v", float64(b.v))
		}
	}
	if f.BearerToken > f.RequestHeaders {
		ps.Addf("fixed.bearer_token", "is part of request_headers, so cannot be larger")
	}
}

// maxPerMonth bounds a class's count (one a second is far beyond any client).
const maxPerMonth = 2_592_000

func (c Class) validate(ps *configfile.Problems, path string) {
	if !c.Kind.Valid() {
		ps.Addf(path+".kind", "unknown kind %q (one of %s)", c.Kind, strings.Join(kindNames(), ", "))
	}
	switch {
	case c.Interval > 0 && c.PerMonth > 0:
		ps.Addf(path+".interval", "give interval or per_month, not both")
	case c.Interval < 0:
		ps.Addf(path+".interval", "must not be negative")
	case c.Interval > 0 && c.Interval.D() < time.Second:
		ps.Addf(path+".interval", "must be at least 1s")
	case !(c.PerMonth >= 0 && c.PerMonth <= maxPerMonth):
		ps.Addf(path+".per_month", "must be between 0 and %d", maxPerMonth)
	}
	if c.Follows != "" && c.Interval > 0 {
		ps.Addf(path+".interval", "a class that follows another gives per_month")
	}
	if lo, hi := c.Kind.exchanges(); c.Exchanges < lo || c.Exchanges > hi {
		ps.Addf(path+".exchanges", "%s takes %d to %d exchanges, not %d", c.Kind, lo, hi, c.Exchanges)
	}
	if c.Items < 0 || c.Items > 10000 {
		ps.Addf(path+".items", "must be between 0 and 10000")
	}
	if c.Kind == KindSUPMetadata && c.Items < 1 {
		ps.Addf(path+".items", "%s needs the revisions per call (items >= 1)", c.Kind)
	}
	if c.Request < 0 || c.Request > 1e9 {
		ps.Addf(path+".request", "must be between 0 and 1 GB")
	}
	if c.Response < 0 || c.Response > 1e10 {
		ps.Addf(path+".response", "must be between 0 and 10 GB")
	}
	if !(c.Jitter >= 0 && c.Jitter <= 1) {
		ps.Addf(path+".jitter", "must be between 0 and 1")
	}
	if c.Habits != "" && c.Habits != Original && c.Habits != CMG {
		ps.Addf(path+".habits", "must be empty, %s or %s", Original, CMG)
	}
}

// Builtins lists the built-in profile names.
func Builtins() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Builtin returns a copy of the built-in profile of that name.
func Builtin(name string) (*Profile, bool) {
	f, ok := builtins[name]
	if !ok {
		return nil, false
	}
	return f(), true
}

// Lookup returns the built-in profile of that name, or else reads the profile
// file at that path.
func Lookup(nameOrPath string) (*Profile, error) {
	if p, ok := Builtin(nameOrPath); ok {
		return p, nil
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("profile %q is neither %s nor a readable file: %w", nameOrPath, strings.Join(Builtins(), ", "), err)
	}
	return Parse(nameOrPath, data)
}

// Parse decodes a profile file (strict YAML). A file with `base: NAME` starts
// from that built-in profile; one without it must give every field.
func Parse(name string, data []byte) (*Profile, error) {
	var head struct {
		Base string `yaml:"base"`
	}
	p := &Profile{}
	if err := yaml.Unmarshal(data, &head); err == nil && head.Base != "" {
		b, ok := Builtin(head.Base)
		if !ok {
			return nil, fmt.Errorf("%s: base %q is not a built-in profile (%s)", name, head.Base, strings.Join(Builtins(), ", "))
		}
		p = b
	}
	if err := configfile.Decode(name, data, p); err != nil {
		return nil, err
	}
	return p, nil
}
