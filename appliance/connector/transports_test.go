package connector

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/tunnel"
)

func TestTransportSettingsValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(g *GatewayConfig)
		want []string
	}{
		{"defaults", func(*GatewayConfig) {}, nil},
		{"unknown transport", func(g *GatewayConfig) { g.Transports = []string{"tcp_tls", "quic"} }, []string{"gateway.transports[1]"}},
		{"twice", func(g *GatewayConfig) { g.Transports = []string{"https", "https"} }, []string{"gateway.transports[1]"}},
		{"none", func(g *GatewayConfig) { g.Transports = nil }, []string{"gateway.transports"}},
		{"proxy not http", func(g *GatewayConfig) { g.Proxy.URL = "socks5://p:1080" }, []string{"gateway.proxy.url"}},
		{"credentials in the url", func(g *GatewayConfig) { g.Proxy.URL = "http://u:p@proxy:3128" }, []string{"gateway.proxy.url"}},
		{"password without user", func(g *GatewayConfig) { g.Proxy = ProxyConfig{URL: "http://p:3128", PasswordFile: "/x"} }, []string{"gateway.proxy.username"}},
		{"user without password file", func(g *GatewayConfig) { g.Proxy = ProxyConfig{URL: "http://p:3128", Username: "u"} }, []string{"gateway.proxy.password_file"}},
		{"retry too often", func(g *GatewayConfig) { g.RetryPreferred = 0 }, []string{"gateway.retry_preferred"}},
		{"https base out of range", func(g *GatewayConfig) { g.Instances = 4; g.HTTPSPortBase = 65534 }, []string{"gateway.https_port_base"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := DefaultConfig().Gateway
			tc.edit(&g)
			var ps configfile.Problems
			g.validateTransports(&ps)
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

func TestLadder(t *testing.T) {
	g := DefaultConfig().Gateway
	g.Host = "gw.example.com"
	names := func(ts []tunnel.Transport) string {
		var n []string
		for _, t := range ts {
			n = append(n, t.Name())
		}
		return strings.Join(n, ",")
	}
	none := func(string) string { return "" }
	if got, want := names(g.Ladder(&tls.Config{}, none)), "tcp_tls,https"; got != want {
		t.Errorf("ladder without a proxy: %s, want %s", got, want)
	}
	env := func(k string) string {
		if k == "HTTPS_PROXY" {
			return "http://proxy.corp:3128"
		}
		return ""
	}
	if got, want := names(g.Ladder(&tls.Config{}, env)), "tcp_tls,https,https_proxy"; got != want {
		t.Errorf("ladder with HTTPS_PROXY: %s, want %s", got, want)
	}
	if g.HTTPSPortFor(0) != 443 {
		t.Errorf("one instance: HTTPS port %d, want 443", g.HTTPSPortFor(0))
	}
	g.Instances = 3
	if g.HTTPSPortFor(2) != 10126 {
		t.Errorf("instance 2 of 3: HTTPS port %d, want 10126", g.HTTPSPortFor(2))
	}

	// The password is read from its file at each dial.
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.Proxy = ProxyConfig{URL: "http://proxy.corp:3128", Username: "cmg", PasswordFile: pw}
	p, err := g.ProxyFor("gw.example.com:10124", none)
	if err != nil || p.Username != "cmg" || p.Password != "one" {
		t.Fatalf("proxy %+v, %v; want cmg/one", p, err)
	}
	if err := os.WriteFile(pw, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, _ := g.ProxyFor("gw.example.com:10124", none); p.Password != "two" {
		t.Errorf("password after rotation %q, want two", p.Password)
	}
}
