package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/cmg-gateway/cmg/configfile"
)

// ProxyProtocolConfig is PROXY protocol v2 from the load balancers in front of
// the instance (DESIGN section 4). A connection from one of TrustedCIDRs may
// start with a v2 header; its source address then becomes the connection's
// remote address, so the device's real address is what the access log,
// X-Forwarded-For, Cmg-Client-Address and source-CIDR policies see. A connection
// from anywhere else is taken as it is: its header is never parsed, so a device
// cannot claim another address.
type ProxyProtocolConfig struct {
	// TrustedCIDRs are the load balancers' addresses (e.g. 10.0.0.0/24). Empty
	// turns PROXY protocol off.
	TrustedCIDRs []string `yaml:"trusted_cidrs"`
	// HeaderTimeout bounds reading the header. Zero means 5 s.
	HeaderTimeout time.Duration `yaml:"header_timeout,omitempty"`
}

func (c *ProxyProtocolConfig) validate(ps *configfile.Problems) {
	for i, s := range c.TrustedCIDRs {
		if _, err := netip.ParsePrefix(s); err != nil {
			ps.Addf(fmt.Sprintf("proxy_protocol.trusted_cidrs[%d]", i), "%q is not a CIDR (10.0.0.0/24, 2001:db8::/64)", s)
		}
	}
	if c.HeaderTimeout < 0 {
		ps.Addf("proxy_protocol.header_timeout", "must not be negative")
	}
}

// errNotV2 refuses PROXY protocol v1 and anything but v2.
var errNotV2 = errors.New("only PROXY protocol v2 is accepted")

// proxyProtoListener wraps ln so that connections from the trusted load
// balancers may carry a PROXY v2 header. It returns ln unchanged when PROXY
// protocol is off.
func proxyProtoListener(ln net.Listener, cfg ProxyProtocolConfig) net.Listener {
	if len(cfg.TrustedCIDRs) == 0 {
		return ln
	}
	trusted := parsePrefixes(cfg.TrustedCIDRs)
	timeout := cfg.HeaderTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if isTrusted(o.Upstream, trusted) {
				// A header is used when present: health checks and direct
				// connections from the load balancer's host may come without.
				return proxyproto.USE, nil
			}
			return proxyproto.SKIP, nil
		},
		ValidateHeader: func(h *proxyproto.Header) error {
			if h.Version != 2 {
				return errNotV2
			}
			return nil
		},
		ReadHeaderTimeout: timeout,
	}
}

func isTrusted(a net.Addr, trusted []netip.Prefix) bool {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parsePrefixes parses the CIDRs that Validate accepted.
func parsePrefixes(cidrs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range cidrs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}
