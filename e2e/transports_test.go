package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/tunnel"
)

// TestOneInstanceSharesTheClientPort: a one-instance service takes the HTTPS
// transport on its device port (443 in production): the connector, finding
// TCP-TLS closed, comes in over the shared listener, and devices use the same
// port.
func TestOneInstanceSharesTheClientPort(t *testing.T) {
	m, err := demo.Init(t.TempDir(), freePortBase(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m}
	t.Cleanup(e.stopAll)
	e.startRoles()
	cfg := demo.GatewayConfig(m, 0)
	cfg.Instances = 1
	cfg.Tunnel.HTTPSListen = ""
	e.gws = append(e.gws, e.startGateway(0, cfg))
	cc := demo.ConnectorConfig(m, 0)
	cc.Gateway.Instances = 1
	cc.Gateway.TCPPortBase = portOf(t, freeAddr(t))
	cc.Gateway.HTTPSPort = portOf(t, cfg.Client.Listen)
	cc.Gateway.ConnectTimeout = time.Second
	e.conns = append(e.conns, e.startConnector(cc))
	t.Cleanup(e.stopAll)
	waitFor(t, "cp1 over the shared port", 10*time.Second, func() bool {
		st := gatewayStatus(t, e.gws[0].admin)
		return len(st.Connectors) == 1 && st.Connectors[0].Transport == tunnel.TransportHTTPS
	})
	if r := e.curl(true, m.Gateways[0].ClientURL+m.ExamplePath); r.status != 200 {
		t.Errorf("device request on the port the tunnel shares: %d %s", r.status, r.stderr)
	}
	// A device offering the tunnel's ALPN with its own certificate is refused
	// by the connector-CA configuration.
	tlsCfg := deviceClient(t, m, true).Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.NextProtos = []string{tunnel.ALPN}
	tlsCfg.ServerName = "127.0.0.1"
	conn, err := tls.Dial("tcp", cfg.Client.Listen, tlsCfg)
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "GET "+tunnel.UpgradePath+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "+tunnel.UpgradeProtocol+"\r\n\r\n")
		var b [64]byte
		n, rerr := conn.Read(b[:])
		err = rerr
		if rerr == nil {
			t.Errorf("a device certificate got an answer to the tunnel upgrade: %q", b[:n])
		}
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a device certificate on the tunnel's ALPN: %v, want a certificate error", err)
	}
}

// TestSiteAffinity: a device's request goes to a connector of the site its
// route belongs to, never to another site's, even one that claims the route.
func TestSiteAffinity(t *testing.T) {
	const site2MP = "72057594037927951"
	e := newGatewaysOnly(t, func(_ int, c *gateway.Config) {
		c.Sites = append(c.Sites, gateway.SiteConfig{Name: "site2", Connectors: []string{"cpb"},
			Roles: []gateway.RoleConfig{{ID: site2MP, Kind: tunnel.ManagementPoint}}})
	})
	m := e.m
	if err := pki.IssueConnector(pki.Dir(m.PKIDir), "site2", "cpb", time.Now()); err != nil {
		t.Fatal(err)
	}
	for j := range m.Connectors {
		e.conns = append(e.conns, e.startConnector(demo.ConnectorConfig(m, j)))
	}
	cb := demo.ConnectorConfig(m, 0)
	cb.Name, cb.Site = "cpb", "site2"
	cb.TLS = connector.TLSConfig{CertFile: pki.Dir(m.PKIDir).Path(pki.ConnectorCert("cpb")), KeyFile: pki.Dir(m.PKIDir).Path(pki.ConnectorKey("cpb"))}
	// cpb serves site2's MP, and claims site1's MP too.
	cb.Roles = []connector.RoleConfig{cb.Roles[0], cb.Roles[0]}
	cb.Roles[0].ID = site2MP
	cb.Admin = admin.Config{Listen: freeAddr(t)}
	e.conns = append(e.conns, e.startConnector(cb))
	e.waitSessions(3)
	for i, g := range e.gws {
		for _, c := range gatewayStatus(t, g.admin).Connectors {
			if c.Name == "cpb" && (len(c.Routes) != 1 || c.Routes[0].RoleID != site2MP) {
				t.Errorf("gateway %d accepted cpb's routes %+v, want site2's MP only", i, c.Routes)
			}
		}
	}
	served := func(j int) float64 { return metricValue(scrape(t, e.conns[j].admin), "cmg_connector_requests_total") }
	client := e.deviceClient(true)
	get := func(path string) (int, string) {
		resp, err := client.Get(m.Gateways[0].ClientURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("CMG-Error")
	}
	for i := 0; i < 40; i++ {
		if code, reason := get(m.ExamplePath); code != 200 {
			t.Fatalf("site1 MP: %d %s", code, reason)
		}
	}
	if served(2) != 0 || served(0) == 0 || served(1) == 0 {
		t.Errorf("site1's MP served by cp1 %v, cp2 %v, cpb %v; want cp1 and cp2 only", served(0), served(1), served(2))
	}
	for i := 0; i < 10; i++ {
		if code, reason := get("/CCM_Proxy_MutualAuth/" + site2MP + "/SMS_MP/.sms_aut?MPLIST"); code != 200 {
			t.Fatalf("site2 MP: %d %s", code, reason)
		}
	}
	// The connector counts a request just after it answered it.
	waitFor(t, "cpb to count the 10 requests for site2's MP", 5*time.Second, func() bool { return served(2) == 10 })
	// With site1's connectors gone, its MP is unavailable: site2's connector is
	// never used for it.
	e.conns[0].stop()
	e.conns[1].stop()
	waitFor(t, "site1's connectors gone", 10*time.Second, func() bool { return len(gatewayStatus(t, e.gws[0].admin).Connectors) == 1 })
	if code, reason := get(m.ExamplePath); code != 503 || reason != "ConnectorUnavailable" {
		t.Errorf("site1 MP without site1 connectors: %d %s, want 503 ConnectorUnavailable", code, reason)
	}
	if served(2) != 10 {
		t.Errorf("cpb served %v requests, want still 10", served(2))
	}
}

// TestProxyProtocolTrustedOnly: the device address comes from a PROXY v2
// header only on connections from the configured load-balancer CIDRs.
func TestProxyProtocolTrustedOnly(t *testing.T) {
	e := newEnv(t, envOptions{gateway: func(_ int, c *gateway.Config) {
		c.ProxyProtocol.TrustedCIDRs = []string{"127.0.0.1/32"}
	}})
	url := e.m.Gateways[0].ClientURL + mpPrefix + "/cmg-echo"
	header := func(src string) []byte {
		h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
			SourceAddr: &net.TCPAddr{IP: net.ParseIP(src), Port: 40000}, DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443}}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name    string
		from    string
		header  []byte
		wantXFF string // "" means the request must fail
	}{
		{"load balancer with header", "127.0.0.1", header("203.0.113.9"), "203.0.113.9"},
		{"load balancer without header", "127.0.0.1", nil, "127.0.0.1"},
		{"device forging a header", "127.0.0.3", header("198.51.100.7"), ""},
		{"device without header", "127.0.0.3", nil, "127.0.0.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.deviceClient(true)
			tr := c.Transport.(*http.Transport)
			tr.DisableKeepAlives = true
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}
				conn, err := d.DialContext(ctx, network, addr)
				if err == nil && tc.header != nil {
					_, err = conn.Write(tc.header)
				}
				return conn, err
			}
			resp, err := c.Get(url)
			if tc.wantXFF == "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("a header from %s was accepted (%s), want the connection refused", tc.from, resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var echo roles.EchoReply
			err = jsonDecode(resp.Body, &echo)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(echo.Headers["X-Forwarded-For"]); got != "["+tc.wantXFF+"]" {
				t.Errorf("X-Forwarded-For %s, want [%s]", got, tc.wantXFF)
			}
			if got := fmt.Sprint(echo.Headers["Cmg-Client-Address"]); got != "["+tc.wantXFF+"]" {
				t.Errorf("Cmg-Client-Address %s, want [%s]", got, tc.wantXFF)
			}
		})
	}
}
