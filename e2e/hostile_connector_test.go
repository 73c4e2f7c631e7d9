package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/tunnel"
)

// Hostile connectors (SECURITY.md, "Connectors"): a connector holding a valid
// certificate is an insider, but it must not be able to take more than it was
// given, nor to hurt the gateway or the devices of anyone else.

const (
	otherSite       = "site2"
	otherSiteRoleID = "72057594037927999"
)

// hostileConnector is a connector's TLS connection to the tunnel port, driven
// by hand.
type hostileConnector struct {
	t    *testing.T
	conn *tls.Conn
}

func dialTunnel(t *testing.T, m *demo.Manifest, i int, name string) *hostileConnector {
	t.Helper()
	pd := pki.Dir(m.PKIDir)
	cert, err := tls.LoadX509KeyPair(pd.Path(pki.ConnectorCert(name)), pd.Path(pki.ConnectorKey(name)))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(ca)
	c, err := tls.Dial("tcp", m.Gateways[i].TunnelTCP, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("tunnel TLS: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &hostileConnector{t: t, conn: c}
}

// closedByGateway reports whether the gateway closed the connection (and
// returns what it sent before).
func (h *hostileConnector) closedByGateway() (string, bool) {
	b, err := io.ReadAll(h.conn)
	return string(b), err == nil || isReset(err) || strings.Contains(err.Error(), "EOF")
}

// hello sends a hello and returns the gateway's ack.
func (h *hostileConnector) hello(hello *tunnel.Hello) *tunnel.Ack {
	h.t.Helper()
	if err := tunnel.WriteHello(h.conn, hello); err != nil {
		h.t.Fatal(err)
	}
	ack, err := tunnel.ReadAck(h.conn)
	if err != nil {
		h.t.Fatalf("reading the ack: %v", err)
	}
	return ack
}

// session starts yamux as the connector does and takes the control stream.
func (h *hostileConnector) session() (*yamux.Session, net.Conn) {
	h.t.Helper()
	_ = h.conn.SetDeadline(time.Time{})
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	mux, err := yamux.Server(h.conn, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { mux.Close() })
	ctrl, err := mux.AcceptStream()
	if err != nil {
		h.t.Fatalf("control stream: %v", err)
	}
	// Answer pings so the gateway keeps the session.
	go func() {
		r := bufio.NewReader(ctrl)
		for {
			m, err := tunnel.ReadMessage(r)
			if err != nil {
				return
			}
			if m.Type == tunnel.MsgPing {
				writeControl(ctrl, &tunnel.Message{Type: tunnel.MsgPong, Seq: m.Seq, Time: m.Time})
			}
		}
	}()
	return mux, ctrl
}

func mpRoute(id string, kind tunnel.RoleKind) tunnel.Route {
	return tunnel.Route{RoleID: id, Kind: kind, Auth: []string{tunnel.AuthMutual}}
}

func TestHostileConnectors(t *testing.T) {
	e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) {
		c.Backend.ResponseHeaderTimeout = time.Second
		c.Sites = append(c.Sites, gateway.SiteConfig{Name: otherSite, Connectors: []string{"cpx"},
			Roles: []gateway.RoleConfig{{ID: otherSiteRoleID, Kind: tunnel.ManagementPoint}}})
	}})
	m := e.m
	refused := func(reason string) float64 {
		return metricValue(scrape(t, e.gws[0].admin), "cmg_tunnel_refused_total", "reason", reason)
	}
	logHas := func(s string) bool { return strings.Contains(readLog(t, e.logs["gateway-0"]), s) }
	served := func(t *testing.T) {
		t.Helper()
		if r := e.curl(true, m.Gateways[0].ClientURL+m.ExamplePath); r.status != 200 {
			t.Fatalf("a device through the honest connector got %d %s", r.status, r.stderr)
		}
	}

	t.Run("garbage after TLS", func(t *testing.T) {
		before := refused("hello")
		h := dialTunnel(t, m, 0, "cp2")
		garbage := make([]byte, 4096)
		_, _ = rand.Read(garbage)
		_, _ = h.conn.Write(garbage)
		if _, ok := h.closedByGateway(); !ok {
			t.Fatal("the gateway kept the connection after garbage")
		}
		waitFor(t, "the refusal counted", 5*time.Second, func() bool { return refused("hello") > before })
		if !logHas("tunnel: bad hello") {
			t.Error("no log line for the bad hello")
		}
		served(t)
	})
	t.Run("oversized hello", func(t *testing.T) {
		before := refused("hello")
		h := dialTunnel(t, m, 0, "cp2")
		hdr := []byte("cmgT\x01\x01\x00\x00\x00\x00")
		binary.BigEndian.PutUint32(hdr[6:], 16<<20)
		_, _ = h.conn.Write(hdr)
		ack, err := tunnel.ReadAck(h.conn)
		if err != nil || !strings.Contains(ack.Error, "64 KiB") {
			t.Fatalf("ack %+v, %v; want a refusal naming the 64 KiB bound", ack, err)
		}
		waitFor(t, "the refusal counted", 5*time.Second, func() bool { return refused("hello") > before })
		served(t)
	})
	t.Run("malformed hello", func(t *testing.T) {
		for name, payload := range map[string]string{
			"not JSON":        "{not json",
			"trailing data":   `{"name":"cp2","site":"site1","routes":[]} {}`,
			"bad route shape": `{"name":"cp2","site":"site1","routes":[{"role_id":"../etc","kind":"management_point","auth":["mutual_auth"]}]}`,
			"too many routes": `{"name":"cp2","site":"site1","routes":[` + strings.Repeat(`{"role_id":"1","kind":"management_point","auth":["mutual_auth"]},`, 300) + `{"role_id":"2","kind":"management_point","auth":["mutual_auth"]}]}`,
		} {
			t.Run(name, func(t *testing.T) {
				h := dialTunnel(t, m, 0, "cp2")
				hdr := []byte("cmgT\x01\x01\x00\x00\x00\x00")
				binary.BigEndian.PutUint32(hdr[6:], uint32(len(payload)))
				_, _ = h.conn.Write(append(hdr, payload...))
				ack, err := tunnel.ReadAck(h.conn)
				if err != nil || ack.Error == "" || len(ack.Accepted) != 0 {
					t.Fatalf("ack %+v, %v; want a refusal", ack, err)
				}
				if _, ok := h.closedByGateway(); !ok {
					t.Fatal("the gateway kept the connection")
				}
			})
		}
		served(t)
	})
	t.Run("hello naming another connector than the certificate", func(t *testing.T) {
		before := refused("identity_mismatch")
		h := dialTunnel(t, m, 0, "cp2")
		ack := h.hello(&tunnel.Hello{Name: "cp1", Site: demo.Site, Routes: []tunnel.Route{mpRoute(demo.MPRoleID, tunnel.ManagementPoint)}})
		if ack.Error == "" {
			t.Fatalf("ack %+v, want a refusal", ack)
		}
		waitFor(t, "the refusal counted", 5*time.Second, func() bool { return refused("identity_mismatch") > before })
	})
	t.Run("routes it may not publish are refused, the rest of the session lives", func(t *testing.T) {
		before := refused("route")
		h := dialTunnel(t, m, 0, "cp2")
		ack := h.hello(&tunnel.Hello{Name: "cp2", Site: demo.Site, Routes: []tunnel.Route{
			mpRoute(demo.MPRoleID, tunnel.SoftwareUpdatePoint),   // the MP's RoleID as another role kind
			mpRoute(otherSiteRoleID, tunnel.ManagementPoint),     // another site's role
			mpRoute("72057594037920000", tunnel.ManagementPoint), // a role outside the allow-list
		}})
		if ack.Error != "" || len(ack.Accepted) != 0 || len(ack.Refused) != 3 {
			t.Fatalf("ack %+v, want the session with all three routes refused", ack)
		}
		for _, r := range ack.Refused {
			t.Logf("refused %s %s: %s", r.RoleID, r.Kind, r.Reason)
		}
		if !strings.Contains(ack.Refused[1].Reason, "belongs to site "+otherSite) {
			t.Errorf("another site's role refused for %q, want it named as another site's", ack.Refused[1].Reason)
		}
		h.session()
		waitFor(t, "the refusals counted", 5*time.Second, func() bool { return refused("route") >= before+3 })
		if !logHas("tunnel: route refused") {
			t.Error("no log line for the refused routes")
		}
		// The other site's role stays unserved; the MP is served by cp1 only.
		if r := e.curl(true, m.Gateways[0].ClientURL+"/CCM_Proxy_MutualAuth/"+otherSiteRoleID+"/x"); r.status != 503 || r.header.Get("CMG-Error") != "ConnectorUnavailable" {
			t.Errorf("another site's role: got %d %q, want 503 ConnectorUnavailable", r.status, r.header.Get("CMG-Error"))
		}
		served(t)
	})
	t.Run("streams the connector opens are refused", func(t *testing.T) {
		before := refused("connector_stream")
		h := dialTunnel(t, m, 0, "cp2")
		h.hello(&tunnel.Hello{Name: "cp2", Site: demo.Site})
		mux, _ := h.session()
		for i := 0; i < 5; i++ {
			st, err := mux.OpenStream()
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			_, _ = io.WriteString(st, "GET /api/v1/status HTTP/1.1\r\nHost: gateway\r\n\r\n")
			_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
			if b, _ := io.ReadAll(st); len(b) != 0 {
				t.Fatalf("the gateway answered a connector's stream with %q", b)
			}
			st.Close()
		}
		waitFor(t, "the refusals counted", 5*time.Second, func() bool { return refused("connector_stream") >= before+5 })
		if !logHas("tunnel: refused a stream opened by the connector") {
			t.Error("no log line for the refused streams")
		}
		served(t)
	})
	t.Run("a flood of route updates closes the session", func(t *testing.T) {
		before := refused("route_flood")
		h := dialTunnel(t, m, 0, "cp2")
		routes := []tunnel.Route{mpRoute(demo.MPRoleID, tunnel.ManagementPoint)}
		if ack := h.hello(&tunnel.Hello{Name: "cp2", Site: demo.Site, Routes: routes}); len(ack.Accepted) != 1 {
			t.Fatalf("ack %+v, want the MP route accepted", ack)
		}
		mux, ctrl := h.session()
		// Each update rebuilds the routing table; an honest connector sends one
		// per reload. 10,000 in a burst is far past the limit.
		for i := 0; i < 10000; i++ {
			writeControl(ctrl, &tunnel.Message{Type: tunnel.MsgRoutes, Routes: routes})
			if mux.IsClosed() {
				break
			}
		}
		select {
		case <-mux.CloseChan():
		case <-time.After(10 * time.Second):
			t.Fatal("the gateway kept the session of a connector flooding route updates")
		}
		waitFor(t, "the refusal counted", 5*time.Second, func() bool { return refused("route_flood") > before })
		if !logHas("tunnel: connector floods route updates") {
			t.Error("no log line for the route-update flood")
		}
		served(t)
	})
	t.Run("a connector that stalls its streams is chosen last", func(t *testing.T) {
		before := refused("stalled_streams")
		h := dialTunnel(t, m, 0, "cp2")
		ack := h.hello(&tunnel.Hello{Name: "cp2", Site: demo.Site, Routes: []tunnel.Route{mpRoute(demo.MPRoleID, tunnel.ManagementPoint)}})
		if len(ack.Accepted) != 1 {
			t.Fatalf("ack %+v, want the MP route accepted", ack)
		}
		mux, _ := h.session()
		var taken atomic.Int64
		go func() {
			for {
				st, err := mux.AcceptStream()
				if err != nil {
					return
				}
				taken.Add(1)
				go func() { _, _ = io.Copy(io.Discard, st) }() // read the request, never answer
			}
		}()
		waitFor(t, "cp2 on gateway 0", 5*time.Second, func() bool { return len(gatewayStatus(t, e.gws[0].admin).Connectors) == 2 })
		client := e.deviceClient(true)
		var ok, timedOut int
		for i := 0; i < 24; i++ {
			resp, err := client.Get(m.Gateways[0].ClientURL + m.ExamplePath)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				ok++
			case resp.Header.Get("CMG-Error") == "BackendTimeout":
				timedOut++
			default:
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, resp.Header.Get("CMG-Error"))
			}
		}
		t.Logf("24 requests with a stalling connector in the round-robin: %d served, %d timed out (streams it took: %d)", ok, timedOut, taken.Load())
		if timedOut > tunnel.StallThreshold {
			t.Errorf("%d requests timed out on the stalling connector, want at most %d before it is chosen last", timedOut, tunnel.StallThreshold)
		}
		waitFor(t, "the quarantine counted", 5*time.Second, func() bool { return refused("stalled_streams") > before })
		if !logHas("tunnel: connector stalls its streams") {
			t.Error("no log line for the stalling connector")
		}
	})
	t.Run("an endless response header is cut at 1 MiB", func(t *testing.T) {
		h := dialTunnel(t, m, 0, "cp2")
		h.hello(&tunnel.Hello{Name: "cp2", Site: demo.Site, Routes: []tunnel.Route{mpRoute(demo.MPRoleID, tunnel.ManagementPoint)}})
		mux, _ := h.session()
		var sent atomic.Int64
		go func() {
			for {
				st, err := mux.AcceptStream()
				if err != nil {
					return
				}
				go func() {
					defer st.Close()
					_, _ = io.WriteString(st, "HTTP/1.1 200 OK\r\n")
					line := []byte("X-Endless: " + strings.Repeat("a", 1000) + "\r\n")
					for i := 0; i < 64<<10; i++ { // 64 MiB unless cut
						if _, err := st.Write(line); err != nil {
							return
						}
						sent.Add(int64(len(line)))
					}
				}()
			}
		}()
		waitFor(t, "cp2 on gateway 0", 5*time.Second, func() bool { return len(gatewayStatus(t, e.gws[0].admin).Connectors) == 2 })
		client := e.deviceClient(true)
		for i := 0; i < 4; i++ {
			resp, err := client.Get(m.Gateways[0].ClientURL + m.ExamplePath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s, want 200 (retried on the honest connector)", i, resp.StatusCode, resp.Header.Get("CMG-Error"))
			}
		}
		if s := sent.Load(); s > 16<<20 {
			t.Errorf("the gateway read %d bytes of response header, want it cut near 1 MiB (plus the stream window)", s)
		}
	})
}

// writeControl writes one length-prefixed control message, as a connector does.
func writeControl(w io.Writer, m *tunnel.Message) {
	body, _ := json.Marshal(m)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	_, _ = w.Write(append(frame, body...))
}
