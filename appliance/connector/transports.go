package connector

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/tunnel"
)

// ProxyConfig is the web proxy of the lowest rung of the ladder. Without a URL
// the connector uses HTTPS_PROXY (or https_proxy) from its environment,
// honouring NO_PROXY.
type ProxyConfig struct {
	// URL is http://host:port.
	URL string `yaml:"url,omitempty"`
	// Username and PasswordFile give basic auth; the file is read at each dial,
	// so a rotated password needs no restart.
	Username     string `yaml:"username,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
}

// The transport names of the ladder.
var transportNames = []string{tunnel.TransportTCPTLS, tunnel.TransportHTTPS, tunnel.TransportProxy}

// Defaults of the transport settings.
const (
	DefaultHTTPSPortBase  = 10124
	DefaultHTTPSPort      = 443
	DefaultConnectTimeout = 5 * time.Second
)

// HTTPSPortFor is instance i's HTTPS tunnel port (DESIGN section 4): the single
// instance's HTTPS port (443) when the service has one instance, else
// HTTPSPortBase+i.
func (c *GatewayConfig) HTTPSPortFor(i int) int {
	if c.Instances == 1 {
		return c.HTTPSPort
	}
	return c.HTTPSPortBase + i
}

func (c *GatewayConfig) validateTransports(ps *configfile.Problems) {
	if c.Instances > 1 && (c.HTTPSPortBase < 1 || c.HTTPSPortBase+c.Instances-1 > 65535) {
		ps.Addf("gateway.https_port_base", "%d is out of range", c.HTTPSPortBase)
	}
	if c.HTTPSPort < 1 || c.HTTPSPort > 65535 {
		ps.Addf("gateway.https_port", "%d is out of range", c.HTTPSPort)
	}
	if len(c.Transports) == 0 {
		ps.Addf("gateway.transports", "list at least one of %s", strings.Join(transportNames, ", "))
	}
	seen := map[string]bool{}
	for i, t := range c.Transports {
		known := false
		for _, n := range transportNames {
			known = known || t == n
		}
		switch {
		case !known:
			ps.Addf(fmt.Sprintf("gateway.transports[%d]", i), "%q is not one of %s", t, strings.Join(transportNames, ", "))
		case seen[t]:
			ps.Addf(fmt.Sprintf("gateway.transports[%d]", i), "%q is listed twice", t)
		}
		seen[t] = true
	}
	if c.ConnectTimeout <= 0 {
		ps.Addf("gateway.connect_timeout", "must be positive")
	}
	if c.RetryPreferred < time.Second {
		ps.Addf("gateway.retry_preferred", "must be at least 1s")
	}
	if c.Proxy.URL != "" {
		if u, err := url.Parse(c.Proxy.URL); err != nil || u.Scheme != "http" || u.Host == "" {
			ps.Addf("gateway.proxy.url", "%q is not http://host:port", c.Proxy.URL)
		}
	}
	if c.Proxy.PasswordFile != "" && c.Proxy.Username == "" {
		ps.Addf("gateway.proxy.username", "a password file needs a username")
	}
	if c.Proxy.Username != "" && c.Proxy.PasswordFile == "" {
		ps.Addf("gateway.proxy.password_file", "the proxy password is read from a file; name it")
	}
	if strings.Contains(c.Proxy.URL, "@") {
		ps.Addf("gateway.proxy.url", "put no credentials in the URL: use username and password_file")
	}
}

// proxyFunc returns the proxy for a target, from the configuration or the
// environment, or nil when the https_proxy rung has nothing to go through.
func (c *GatewayConfig) proxyFunc(getenv func(string) string) func(target string) (*tunnel.Proxy, error) {
	if c.Proxy.URL == "" {
		return func(target string) (*tunnel.Proxy, error) { return tunnel.ProxyFromEnvironment(target, getenv) }
	}
	return func(string) (*tunnel.Proxy, error) {
		u, err := url.Parse(c.Proxy.URL)
		if err != nil {
			return nil, fmt.Errorf("proxy url: %w", err)
		}
		p := &tunnel.Proxy{URL: u, Username: c.Proxy.Username}
		if c.Proxy.PasswordFile != "" {
			b, err := os.ReadFile(c.Proxy.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("proxy password: %w", err)
			}
			p.Password = strings.TrimRight(string(b), "\r\n")
		}
		return p, nil
	}
}

// ProxyConfigured reports whether the https_proxy rung has a proxy: one in the
// configuration, or HTTPS_PROXY in the environment.
func (c *GatewayConfig) ProxyConfigured(getenv func(string) string) bool {
	return c.Proxy.URL != "" || getenv("HTTPS_PROXY") != "" || getenv("https_proxy") != ""
}

// Ladder builds the transports of the fallback ladder in the configured order.
// The https_proxy rung is left out when no proxy is configured or set in the
// environment. getenv nil means os.Getenv.
func (c *GatewayConfig) Ladder(tlsCfg *tls.Config, getenv func(string) string) []tunnel.Transport {
	if getenv == nil {
		getenv = os.Getenv
	}
	d := &net.Dialer{Timeout: c.ConnectTimeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	var out []tunnel.Transport
	for _, name := range c.Transports {
		switch name {
		case tunnel.TransportTCPTLS:
			out = append(out, &tunnel.TCPTLS{Host: c.Host, PortBase: c.TCPPortBase, TLS: tlsCfg, Dialer: dial})
		case tunnel.TransportHTTPS:
			out = append(out, &tunnel.HTTPS{Host: c.Host, Port: c.HTTPSPortFor, TLS: tlsCfg, Dialer: dial})
		case tunnel.TransportProxy:
			if c.ProxyConfigured(getenv) {
				out = append(out, &tunnel.HTTPS{Host: c.Host, Port: c.HTTPSPortFor, TLS: tlsCfg, Dialer: dial, Proxy: c.proxyFunc(getenv)})
			}
		}
	}
	return out
}

// Ladder is the connector's transports, best first.
func (c *Connector) Ladder() []tunnel.Transport { return c.ladder }

// Hello is the hello the connector sends.
func (c *Connector) Hello() tunnel.Hello { return c.hello }

// StreamHandler serves the request streams the gateway opens (the role proxy).
func (c *Connector) StreamHandler() http.Handler { return http.HandlerFunc(c.serveStream) }

// GatewayTLS is the TLS configuration towards the gateway: the connector's
// certificate and the roots that verify the gateway.
func (c *Connector) GatewayTLS() *tls.Config { return c.gwTLS }

// ProxyFor returns the proxy the https_proxy rung uses for target (host:port),
// or nil when none applies. getenv nil means os.Getenv.
func (c *GatewayConfig) ProxyFor(target string, getenv func(string) string) (*tunnel.Proxy, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	return c.proxyFunc(getenv)(target)
}
