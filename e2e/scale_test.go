package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/tunnel"
)

// TestSixteenInstances runs a service of 16 gateway instances (the most a
// service has) and two connectors on this machine: every connector holds 16
// sessions, and the status API and the metrics of both sides show all of them.
func TestSixteenInstances(t *testing.T) {
	const n = 16
	var m *demo.Manifest
	for try := 0; m == nil; try++ {
		base := freePortBase(t)
		if !portsFree(base, n, 443, 1100, 2124, 2140) {
			if try > 20 {
				t.Fatal("no port base with 16 instances' ports free")
			}
			continue
		}
		var err error
		if m, err = demo.Init(t.TempDir(), base); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, m: m}
	t.Cleanup(e.stopAll)
	e.startRoles()
	for i := 0; i < n; i++ {
		cfg := demo.GatewayConfig(m, i)
		cfg.Instances = n
		e.gws = append(e.gws, e.startGateway(i, cfg))
	}
	for j := range m.Connectors {
		cfg := demo.ConnectorConfig(m, j)
		cfg.Gateway.Instances = n
		e.conns = append(e.conns, e.startConnector(cfg))
	}
	t.Cleanup(e.stopAll)
	for j, c := range e.conns {
		waitFor(t, fmt.Sprintf("connector %d to hold %d sessions", j, n), 30*time.Second, func() bool {
			var st connector.Status
			getJSON(t, c.admin+"/api/v1/status", &st)
			up := 0
			for _, in := range st.Instances {
				if in.Connected && in.Transport == tunnel.TransportTCPTLS {
					up++
				}
			}
			return len(st.Instances) == n && up == n
		})
		fams := scrape(t, c.admin)
		for i := 0; i < n; i++ {
			if v := metricValue(fams, "cmg_connector_tunnel_sessions", "gateway_instance", strconv.Itoa(i), "transport", tunnel.TransportTCPTLS); v != 1 {
				t.Errorf("connector %d: cmg_connector_tunnel_sessions{gateway_instance=%d,transport=tcp_tls} = %v, want 1", j, i, v)
			}
		}
	}
	for i, g := range e.gws {
		st := gatewayStatus(t, g.admin)
		if st.Instance != i || st.Instances != n || len(st.Connectors) != len(m.Connectors) || !st.Ready {
			t.Errorf("gateway %d status: instance %d of %d, %d connectors, ready %v; want instance %d of %d, %d connectors, ready",
				i, st.Instance, st.Instances, len(st.Connectors), st.Ready, i, n, len(m.Connectors))
		}
		fams := scrape(t, g.admin)
		for _, c := range m.Connectors {
			if v := metricValue(fams, "cmg_tunnel_sessions", "connector", c.Name, "transport", tunnel.TransportTCPTLS); v != 1 {
				t.Errorf("gateway %d: cmg_tunnel_sessions{connector=%s,transport=tcp_tls} = %v, want 1", i, c.Name, v)
			}
		}
	}
	last := fmt.Sprintf("https://127.0.0.1:%d", m.PortBase+443+n-1)
	if r := e.curl(true, last+m.ExamplePath); r.status != 200 {
		t.Errorf("device request to instance %d: %d %s", n-1, r.status, r.stderr)
	}
}

// portsFree reports whether base+off+i is free for every offset and i < n.
func portsFree(base, n int, offsets ...int) bool {
	for i := 0; i < n; i++ {
		for _, off := range offsets {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off+i))
			if err != nil {
				return false
			}
			ln.Close()
		}
	}
	return true
}
