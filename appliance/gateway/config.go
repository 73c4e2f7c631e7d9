package gateway

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/metrics/cost"
	"github.com/cmg-gateway/cmg/policies"
	"github.com/cmg-gateway/cmg/profiling"
	"github.com/cmg-gateway/cmg/tracing"
	"github.com/cmg-gateway/cmg/tunnel"
)

// Config is the gateway configuration file (gateway.yaml).
type Config struct {
	// Instance is this instance's index (0 to Instances-1); Instances the number
	// of instances of the service (1 to 16).
	Instance  int `yaml:"instance"`
	Instances int `yaml:"instances"`
	// ServiceName is the public host name of the service.
	ServiceName string        `yaml:"service_name"`
	Client      ClientConfig  `yaml:"client"`
	Auth        auth.Config   `yaml:"auth"`
	Tunnel      TunnelConfig  `yaml:"tunnel"`
	Backend     BackendConfig `yaml:"backend"`
	Admin       admin.Config  `yaml:"admin"`
	Log         LogConfig     `yaml:"log"`
	// Policy is the policy engine: the policy file and its limit state bounds.
	Policy policies.Config `yaml:"policy"`
	// Cost, Tracing and Profiling are the observability sections (README,
	// Observability).
	Cost      cost.Config      `yaml:"cost"`
	Tracing   tracing.Config   `yaml:"tracing"`
	Profiling profiling.Config `yaml:"profiling"`
	// Drain is how a stopping instance leaves the service (drain.go).
	Drain DrainConfig `yaml:"drain"`
	// ProxyProtocol is PROXY protocol v2 from the load balancers (proxyproto.go).
	ProxyProtocol ProxyProtocolConfig `yaml:"proxy_protocol"`
	Content       ContentConfig       `yaml:"content"`
	Notify        NotifyConfig        `yaml:"notifications"`
	// Limits bound what devices may take of the instance (limits.go).
	Limits LimitsConfig `yaml:"limits"`
	// Sites is the allow-list: per site, the roles it may route and the
	// connectors allowed to serve them.
	Sites []SiteConfig `yaml:"sites"`
}

// ClientConfig is the device-facing HTTPS listener.
type ClientConfig struct {
	// Listen is the device listener address. Default ":443".
	Listen string `yaml:"listen"`
	// CertFile and KeyFile are the server certificate (chain) and key, reloaded
	// when they change and on SIGHUP; leave both empty when ACME is on.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CertCheckInterval is how often the certificate files are checked for a
	// change (size, mtime, inode of the file or its symlink target). Default 10s.
	CertCheckInterval time.Duration `yaml:"cert_check_interval"`
	// ACME obtains and renews the server certificate from an ACME CA instead.
	ACME ACMEConfig `yaml:"acme"`
	// MinTLSVersion is "1.2" (default, "Enforce TLS 1.2") or "1.3".
	MinTLSVersion string `yaml:"min_tls_version"`
	// ReadHeaderTimeout bounds reading a request header (no slowloris).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes configfile.Size `yaml:"max_header_bytes"`
	// ProgressTimeout aborts a transfer (either direction) that moves no byte for
	// this long; long transfers are never cut by a whole-body timeout.
	ProgressTimeout time.Duration `yaml:"progress_timeout"`
}

// TunnelConfig is the connector-facing side.
type TunnelConfig struct {
	// Listen is the TCP-TLS tunnel address. Default ":<10140+instance>".
	Listen string `yaml:"listen"`
	// HTTPSListen is the HTTPS tunnel address. Default ":<10124+instance>" when
	// the service has several instances; with one, the HTTPS transport shares
	// the client listener. "none" turns the dedicated listener off.
	HTTPSListen string `yaml:"https_listen,omitempty"`
	// ConnectorCAs are PEM files of the CAs that issue connector certificates.
	ConnectorCAs []string `yaml:"connector_cas"`
	// CertFile and KeyFile are the certificate the gateway shows connectors;
	// empty means the client listener's.
	CertFile     string        `yaml:"cert_file,omitempty"`
	KeyFile      string        `yaml:"key_file,omitempty"`
	PingInterval time.Duration `yaml:"ping_interval"`
}

// BackendConfig bounds what is forwarded to the roles.
type BackendConfig struct {
	// ResponseHeaderTimeout is how long the gateway waits for a response header
	// from the connector (504 BackendTimeout after it). The connector's own
	// per-role timeout should be shorter.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// BodyLimits are the largest request bodies per role kind (413 beyond).
	BodyLimits map[string]configfile.Size `yaml:"body_limits"`
}

// LogConfig sets logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// DeviceHashKeyFile holds the secret key of the device hash in the access
	// log (created when missing); empty means the cost model's key file.
	DeviceHashKeyFile string `yaml:"device_hash_key_file,omitempty"`
}

// SiteConfig is one site of the allow-list.
type SiteConfig struct {
	Name string `yaml:"name"`
	// Code is the `site` claim of the site's tokens (its site code, as PS1),
	// when it is not Name: a content token's site names the site whose
	// distribution point serves the file.
	Code string `yaml:"code,omitempty"`
	// Connectors are the connector names allowed to serve this site's roles.
	Connectors []string     `yaml:"connectors"`
	Roles      []RoleConfig `yaml:"roles"`
}

// RoleConfig is one role of a site that the gateway may route.
type RoleConfig struct {
	ID   string          `yaml:"id"`
	Kind tunnel.RoleKind `yaml:"kind"`
}

// Default ports of DESIGN section 4.
const (
	DefaultTCPTunnelPortBase   = 10140
	DefaultHTTPSTunnelPortBase = 10124
)

// DefaultConfig returns production defaults for instance 0 of a one-instance
// service.
func DefaultConfig() Config {
	return Config{
		Instances: 1,
		Client: ClientConfig{
			Listen:            ":443",
			MinTLSVersion:     "1.2",
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ProgressTimeout:   60 * time.Second,
			CertCheckInterval: 10 * time.Second,
			ACME:              DefaultACMEConfig(),
		},
		Auth:   auth.DefaultConfig(),
		Tunnel: TunnelConfig{PingInterval: 5 * time.Second},
		Backend: BackendConfig{
			ResponseHeaderTimeout: 75 * time.Second,
			BodyLimits: map[string]configfile.Size{
				string(tunnel.ManagementPoint):     256 << 20,
				string(tunnel.SoftwareUpdatePoint): 64 << 20,
				string(tunnel.DistributionPoint):   1 << 20,
			},
		},
		Admin:     admin.DefaultConfig(),
		Log:       LogConfig{Level: "info"},
		Policy:    policies.DefaultConfig(),
		Cost:      cost.DefaultConfig(),
		Tracing:   tracing.DefaultConfig(),
		Profiling: profiling.DefaultConfig(),
		Drain:     DefaultDrainConfig(),
		Content:   DefaultContentConfig(),
		Notify:    DefaultNotifyConfig(),
		Limits:    DefaultLimitsConfig(),
	}
}

// TunnelListen is the TCP-TLS tunnel address, defaulted from the instance index.
func (c *Config) TunnelListen() string {
	if c.Tunnel.Listen != "" {
		return c.Tunnel.Listen
	}
	return fmt.Sprintf(":%d", DefaultTCPTunnelPortBase+c.Instance)
}

// Validate reports every problem of the configuration.
func (c *Config) Validate() error {
	var ps configfile.Problems
	if c.Instances < 1 || c.Instances > 16 {
		ps.Addf("instances", "must be 1 to 16, not %d", c.Instances)
	}
	if c.Instance < 0 || c.Instance >= max(c.Instances, 1) {
		ps.Addf("instance", "must be 0 to instances-1 (%d), not %d", c.Instances-1, c.Instance)
	}
	c.Client.validate(&ps)
	ps.Merge("auth", c.Auth.Validate())
	if len(c.Tunnel.ConnectorCAs) == 0 {
		ps.Addf("tunnel.connector_cas", "at least one connector CA file is required")
	}
	if c.Tunnel.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Tunnel.Listen); err != nil {
			ps.Addf("tunnel.listen", "%v", err)
		}
	}
	if (c.Tunnel.CertFile == "") != (c.Tunnel.KeyFile == "") {
		ps.Addf("tunnel.cert_file", "cert_file and key_file go together")
	}
	if c.Tunnel.PingInterval < 100*time.Millisecond {
		ps.Addf("tunnel.ping_interval", "must be at least 100ms")
	}
	if c.Backend.ResponseHeaderTimeout <= 0 {
		ps.Addf("backend.response_header_timeout", "must be positive")
	}
	for k, v := range c.Backend.BodyLimits {
		if !tunnel.RoleKind(k).Valid() {
			ps.Addf("backend.body_limits."+k, "%q is not a role kind", k)
		}
		if v < 0 {
			ps.Addf("backend.body_limits."+k, "must not be negative")
		}
	}
	ps.Merge("admin", c.Admin.Validate())
	ps.Merge("policy", c.Policy.Validate())
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.Addf("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	ps.Merge("notifications", c.Notify.Validate())
	validateSites(c.Sites, &ps)
	ps.Merge("cost", c.Cost.Validate())
	ps.Merge("tracing", c.Tracing.Validate())
	ps.Merge("profiling", c.Profiling.Validate())
	c.validateTransports(&ps)
	ps.Merge("content", c.Content.Validate())
	c.Limits.validate(&ps)
	return ps.Err()
}

func (c *ClientConfig) validate(ps *configfile.Problems) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		ps.Addf("client.listen", "%v", err)
	}
	c.validateCertSource(ps)
	if _, err := tlsVersion(c.MinTLSVersion); err != nil {
		ps.Addf("client.min_tls_version", "%v", err)
	}
	if c.ReadHeaderTimeout <= 0 {
		ps.Addf("client.read_header_timeout", "must be positive")
	}
	if c.IdleTimeout <= 0 {
		ps.Addf("client.idle_timeout", "must be positive")
	}
	if c.MaxHeaderBytes < 4<<10 || c.MaxHeaderBytes > 1<<20 {
		ps.Addf("client.max_header_bytes", "must be 4KiB to 1MiB")
	}
	if c.ProgressTimeout <= 0 {
		ps.Addf("client.progress_timeout", "must be positive")
	}
}

func validateSites(sites []SiteConfig, ps *configfile.Problems) {
	if len(sites) == 0 {
		ps.Addf("sites", "at least one site is required")
	}
	siteNames := map[string]bool{}
	roleIDs := map[string]string{}
	for i, s := range sites {
		p := fmt.Sprintf("sites[%d]", i)
		if !tunnel.ValidName(s.Name) {
			ps.Addf(p+".name", "%q is not 1-64 letters, digits, '-' or '.'", s.Name)
		} else if siteNames[s.Name] {
			ps.Addf(p+".name", "site %q is listed twice", s.Name)
		}
		siteNames[s.Name] = true
		if s.Code != "" && !tunnel.ValidName(s.Code) {
			ps.Addf(p+".code", "%q is not 1-64 letters, digits, '-' or '.'", s.Code)
		}
		if len(s.Connectors) == 0 {
			ps.Addf(p+".connectors", "at least one connector name is required")
		}
		for j, n := range s.Connectors {
			if !tunnel.ValidName(n) {
				ps.Addf(fmt.Sprintf("%s.connectors[%d]", p, j), "%q is not 1-64 letters, digits, '-' or '.'", n)
			}
		}
		for j, r := range s.Roles {
			rp := fmt.Sprintf("%s.roles[%d]", p, j)
			if !tunnel.ValidRoleID(r.ID) {
				ps.Addf(rp+".id", "%q is not a RoleID (1-20 digits)", r.ID)
			} else if other, dup := roleIDs[r.ID]; dup {
				ps.Addf(rp+".id", "RoleID %s is already listed under site %q", r.ID, other)
			}
			roleIDs[r.ID] = s.Name
			if !r.Kind.Valid() {
				ps.Addf(rp+".kind", "%q is not management_point, software_update_point or distribution_point", r.Kind)
			}
		}
	}
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "1.2", "":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("must be 1.2 or 1.3, not %q", s)
}
