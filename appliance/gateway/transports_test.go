package gateway

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestTransportSectionsValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(c *Config)
		want []string // problem paths
	}{
		{"defaults", func(*Config) {}, nil},
		{"negative delay", func(c *Config) { c.Drain.Delay = -time.Second }, []string{"drain.delay"}},
		{"no grace", func(c *Config) { c.Drain.Grace = 0 }, []string{"drain.grace"}},
		{"bad CIDR", func(c *Config) { c.ProxyProtocol.TrustedCIDRs = []string{"10.0.0.0/8", "10.0.0.1"} }, []string{"proxy_protocol.trusted_cidrs[1]"}},
		{"bad https listen", func(c *Config) { c.Tunnel.HTTPSListen = "10124" }, []string{"tunnel.https_listen"}},
		{"https listen none", func(c *Config) { c.Tunnel.HTTPSListen = "none" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			var ps configfile.Problems
			c.validateTransports(&ps)
			var got []string
			for _, p := range ps.List {
				got = append(got, p.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("problems at %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHTTPSTunnelListen(t *testing.T) {
	cases := []struct {
		instance, instances int
		set, want           string
	}{
		{0, 1, "", ""},
		{0, 2, "", ":10124"},
		{15, 16, "", ":10139"},
		{3, 4, "127.0.0.1:9000", "127.0.0.1:9000"},
		{3, 4, "none", ""},
	}
	for _, tc := range cases {
		c := Config{Instance: tc.instance, Instances: tc.instances, Tunnel: TunnelConfig{HTTPSListen: tc.set}}
		if got := c.HTTPSTunnelListen(); got != tc.want {
			t.Errorf("instance %d of %d, https_listen %q: got %q, want %q", tc.instance, tc.instances, tc.set, got, tc.want)
		}
	}
}

func TestIsTrusted(t *testing.T) {
	cfg := ProxyProtocolConfig{TrustedCIDRs: []string{"10.1.0.0/16", "2001:db8::/32"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if proxyProtoListener(ln, ProxyProtocolConfig{}) != ln {
		t.Errorf("PROXY protocol off must leave the listener as it is")
	}
	var trusted = parsePrefixes(cfg.TrustedCIDRs)
	cases := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3:5", true},
		{"10.2.0.1:5", false},
		{"[::ffff:10.1.0.9]:5", true},
		{"[2001:db8::1]:5", true},
		{"[2001:db9::1]:5", false},
	}
	for _, tc := range cases {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isTrusted(a, trusted); got != tc.want {
			t.Errorf("%s trusted %v, want %v", tc.addr, got, tc.want)
		}
	}
}
