package connector

import (
	"fmt"
	"net/url"
	"time"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/profiling"
	"github.com/cmg-gateway/cmg/tracing"
	"github.com/cmg-gateway/cmg/tunnel"
)

// Config is the connector configuration file (connector.yaml).
type Config struct {
	// Name and Site must match the connector certificate's identity
	// cmg://<site>/<name>.
	Name    string        `yaml:"name"`
	Site    string        `yaml:"site"`
	Gateway GatewayConfig `yaml:"gateway"`
	TLS     TLSConfig     `yaml:"tls"`
	Roles   []RoleConfig  `yaml:"roles"`
	Health  HealthConfig  `yaml:"health"`
	// DrainTimeout bounds how long a stopping connector waits for its streams.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	Admin        admin.Config  `yaml:"admin"`
	Log          LogConfig     `yaml:"log"`
	// Tracing and Profiling are the observability sections (README,
	// Observability).
	Tracing   tracing.Config   `yaml:"tracing"`
	Profiling profiling.Config `yaml:"profiling"`
	Notify    NotifyConfig     `yaml:"notify"`
}

// GatewayConfig says where the gateway service is.
type GatewayConfig struct {
	// Host is the service's host name; Instances its instance count.
	Host      string `yaml:"host"`
	Instances int    `yaml:"instances"`
	// TCPPortBase: instance i takes TCP-TLS tunnels on TCPPortBase+i.
	TCPPortBase int `yaml:"tcp_port_base"`
	// ServerName is the name the gateway's certificate must carry; default Host.
	ServerName string `yaml:"server_name,omitempty"`
	// CAFiles are the roots that verify the gateway's certificate; empty means
	// the system roots.
	CAFiles []string `yaml:"ca_files,omitempty"`
	// HTTPSPortBase: with several instances, instance i takes HTTPS tunnels on
	// HTTPSPortBase+i; HTTPSPort is the one instance's HTTPS port (443).
	HTTPSPortBase int `yaml:"https_port_base"`
	HTTPSPort     int `yaml:"https_port"`
	// Transports is the fallback ladder, best first: tcp_tls, https,
	// https_proxy (the last only when a proxy is configured or HTTPS_PROXY set).
	Transports []string `yaml:"transports"`
	// ConnectTimeout bounds one TCP connect (a filtered port fails after it).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// RetryPreferred is how often an instance on a lower rung tries the better
	// ones, moving back up when one works.
	RetryPreferred time.Duration `yaml:"retry_preferred"`
	// Proxy is the web proxy of the https_proxy rung (transports.go).
	Proxy ProxyConfig `yaml:"proxy,omitempty"`
}

// TLSConfig is the connector's own certificate: its identity towards the gateway,
// and the client certificate it presents to HTTPS roles.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RoleConfig is one on-prem role the connector publishes.
type RoleConfig struct {
	ID   string          `yaml:"id"`
	Kind tunnel.RoleKind `yaml:"kind"`
	// URL is the role's internal base URL; the public prefix is rewritten to it.
	URL string `yaml:"url"`
	// Auth lists the public prefixes that reach the role: mutual_auth
	// (/CCM_Proxy_MutualAuth/<id>/) and server_auth (/CCM_Proxy_ServerAuth/<id>/).
	Auth []string `yaml:"auth"`
	// Timeout is how long to wait for the role's response header (504 after).
	Timeout time.Duration `yaml:"timeout"`
	// HealthURL is probed for role health; empty means a TCP connect to URL's
	// host.
	HealthURL string `yaml:"health_url,omitempty"`
	// CAFiles verify an HTTPS role's certificate; empty means system roots.
	CAFiles []string `yaml:"ca_files,omitempty"`
}

// HealthConfig sets role health probing.
type HealthConfig struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level string `yaml:"level"`
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		Gateway: GatewayConfig{Instances: 1, TCPPortBase: 10140, HTTPSPortBase: DefaultHTTPSPortBase, HTTPSPort: DefaultHTTPSPort,
			Transports: append([]string(nil), transportNames...), ConnectTimeout: DefaultConnectTimeout, RetryPreferred: tunnel.DefaultRetryPreferred},
		Health:       HealthConfig{Interval: 10 * time.Second, Timeout: 3 * time.Second},
		DrainTimeout: 30 * time.Second,
		Admin:        admin.Config{Listen: "127.0.0.1:9200", Pprof: true},
		Log:          LogConfig{Level: "info"},
		Tracing:      tracing.DefaultConfig(),
		Profiling:    profiling.DefaultConfig(),
		Notify:       DefaultNotifyConfig(),
	}
}

// DefaultRoleTimeout is a role's response header timeout when none is set.
const DefaultRoleTimeout = 60 * time.Second

// Validate reports every problem of the configuration.
func (c *Config) Validate() error {
	var ps configfile.Problems
	if !tunnel.ValidName(c.Name) {
		ps.Addf("name", "%q is not 1-64 letters, digits, '-' or '.'", c.Name)
	}
	if !tunnel.ValidName(c.Site) {
		ps.Addf("site", "%q is not 1-64 letters, digits, '-' or '.'", c.Site)
	}
	if c.Gateway.Host == "" {
		ps.Addf("gateway.host", "the gateway service's host name is required")
	}
	if c.Gateway.Instances < 1 || c.Gateway.Instances > 16 {
		ps.Addf("gateway.instances", "must be 1 to 16, not %d", c.Gateway.Instances)
	}
	if c.Gateway.TCPPortBase < 1 || c.Gateway.TCPPortBase+c.Gateway.Instances-1 > 65535 {
		ps.Addf("gateway.tcp_port_base", "%d is out of range", c.Gateway.TCPPortBase)
	}
	c.Gateway.validateTransports(&ps)
	if c.TLS.CertFile == "" {
		ps.Addf("tls.cert_file", "the connector certificate is required")
	}
	if c.TLS.KeyFile == "" {
		ps.Addf("tls.key_file", "the connector key is required")
	}
	if len(c.Roles) == 0 {
		ps.Addf("roles", "at least one role is required")
	}
	seen := map[string]bool{}
	for i, r := range c.Roles {
		p := fmt.Sprintf("roles[%d]", i)
		if !tunnel.ValidRoleID(r.ID) {
			ps.Addf(p+".id", "%q is not a RoleID (1-20 digits)", r.ID)
		} else if seen[r.ID] {
			ps.Addf(p+".id", "RoleID %s is listed twice", r.ID)
		}
		seen[r.ID] = true
		if !r.Kind.Valid() {
			ps.Addf(p+".kind", "%q is not management_point, software_update_point or distribution_point", r.Kind)
		}
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.Addf(p+".url", "%q is not an http or https URL", r.URL)
		}
		if len(r.Auth) == 0 {
			ps.Addf(p+".auth", "list mutual_auth and/or server_auth")
		}
		for j, a := range r.Auth {
			if a != tunnel.AuthMutual && a != tunnel.AuthServer {
				ps.Addf(fmt.Sprintf("%s.auth[%d]", p, j), "%q is not mutual_auth or server_auth", a)
			}
		}
		if r.Timeout < 0 {
			ps.Addf(p+".timeout", "must not be negative")
		}
		if r.HealthURL != "" {
			if u, err := url.Parse(r.HealthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				ps.Addf(p+".health_url", "%q is not an http or https URL", r.HealthURL)
			}
		}
	}
	if c.Health.Interval < 100*time.Millisecond {
		ps.Addf("health.interval", "must be at least 100ms")
	}
	if c.Health.Timeout <= 0 {
		ps.Addf("health.timeout", "must be positive")
	}
	if c.DrainTimeout <= 0 {
		ps.Addf("drain_timeout", "must be positive")
	}
	ps.Merge("admin", c.Admin.Validate())
	ps.Merge("notify", c.Notify.Validate())
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.Addf("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	ps.Merge("tracing", c.Tracing.Validate())
	ps.Merge("profiling", c.Profiling.Validate())
	return ps.Err()
}
