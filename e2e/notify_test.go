package e2e

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/notifyclient"
	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/tunnel"
)

// TestNotificationChannelWithCurl: the real curl, holding the demo device
// certificate, opens the channel and receives a broadcast and a unicast as
// server-sent events with resumable ids; the delivery report names the
// instance that delivered.
func TestNotificationChannelWithCurl(t *testing.T) {
	e := newEnv(t, envOptions{})
	url := e.m.Gateways[0].ClientURL + "/cmg/v1/notifications"
	cmd := exec.Command("curl", "-sS", "-N", "--http1.1", "--max-time", "4", "--cacert", e.m.CAFile,
		"--cert", e.m.ClientCertFile, "--key", e.m.ClientKeyFile, "-D", "-", url)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitChannels(t, e.gws[0].admin, 1, 10*time.Second)
	all := mustNotify(t, e.conns[0].admin, `{"all":true,"event":"policy","data":{"n":1}}`)
	one := mustNotify(t, e.conns[1].admin, `{"device":"`+demo.DeviceName+`","data":"two"}`)
	_ = cmd.Wait() // curl stops itself after --max-time

	for _, tc := range []struct {
		name string
		res  connector.NotifyResult
	}{{"broadcast", all}, {"unicast", one}} {
		if tc.res.Delivered != 1 || len(tc.res.Instances) != 2 || tc.res.Instances[0].Delivered != 1 || tc.res.Instances[1].Delivered != 0 {
			t.Errorf("%s report %+v: want delivered 1, by instance 0", tc.name, tc.res)
		}
		if !tc.res.Buffered {
			t.Errorf("%s report: not buffered", tc.name)
		}
	}
	if one.Instances[1].NotConnected != 1 || len(one.NotConnected) != 0 {
		t.Errorf("unicast report %+v: want instance 1 not connected, the device reached", one)
	}
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	head, body, _ := strings.Cut(got, "\n\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200") || !strings.Contains(head, "Content-Type: text/event-stream") {
		t.Fatalf("curl got header %q", head)
	}
	blocks := strings.Split(strings.TrimSpace(body), "\n\n")
	if len(blocks) != 3 {
		t.Fatalf("curl got %d SSE blocks, want the cursor and 2 events:\n%s", len(blocks), body)
	}
	base := strings.TrimPrefix(blocks[0], "id: ")
	want1 := fmt.Sprintf("id: %s;cp1=%d\nevent: policy\ndata: {\"n\":1}", base, all.Seq)
	want2 := fmt.Sprintf("id: %s;cp1=%d;cp2=%d\ndata: \"two\"", base, all.Seq, one.Seq)
	if blocks[1] != want1 || blocks[2] != want2 {
		t.Errorf("events:\n%s\n%s\nwant:\n%s\n%s", blocks[1], blocks[2], want1, want2)
	}
}

// notifyEnv is the demo with a site key, so devices can use site tokens.
func notifyEnv(t *testing.T, opts envOptions) (*env, func(device string) string) {
	pub, iss := siteKey(t)
	prev := opts.gateway
	opts.gateway = func(i int, c *gateway.Config) {
		c.Auth.Tokens.Site.Keys = []auth.SiteKeyConfig{{Site: demo.SiteCode, File: pub}}
		c.Notify.Heartbeat = 500 * time.Millisecond
		if prev != nil {
			prev(i, c)
		}
	}
	e := newEnv(t, opts)
	return e, func(device string) string { return deviceToken(t, iss, device) }
}

// TestNotificationResumeOnAnotherInstance: a device that was away reconnects to
// the other instance with Last-Event-ID and gets exactly what it missed, from
// both connectors, in order; nothing it already had.
func TestNotificationResumeOnAnotherInstance(t *testing.T) {
	e, token := notifyEnv(t, envOptions{})
	cfg := notifyclient.Config{URLs: []string{e.m.Gateways[0].ClientURL}, TLS: deviceTLS(t, e.m, false), Token: token("laptop-7")}
	d := startDevice(t, cfg)
	d.waitConnected(t)
	mustNotify(t, e.conns[0].admin, `{"device":"laptop-7","data":1}`)
	d.waitEvents(t, 1)
	d.stop()
	last := d.c.Stats().LastEventID

	mustNotify(t, e.conns[0].admin, `{"devices":["laptop-7","other"],"data":2}`)
	mustNotify(t, e.conns[1].admin, `{"device":"laptop-7","event":"x","data":3}`)
	mustNotify(t, e.conns[0].admin, `{"all":true,"data":4}`)
	mustNotify(t, e.conns[1].admin, `{"device":"other","data":0}`)

	cfg.URLs, cfg.LastEventID = []string{e.m.Gateways[1].ClientURL}, last
	d2 := startDevice(t, cfg)
	d2.waitEvents(t, 3)
	time.Sleep(300 * time.Millisecond) // nothing more may come
	if got := d2.data(); !reflect.DeepEqual(got, []string{"2", "3", "4"}) {
		t.Errorf("resumed device got %v, want [2 3 4]", got)
	}
	fams := scrape(t, e.gws[1].admin)
	if v := metricValue(fams, "cmg_gateway_notifications_total", "result", "replayed"); v != 3 {
		t.Errorf("instance 1 replayed %v events, want 3", v)
	}
	// A cursor that is not one starts afresh: nothing replayed.
	d2.stop()
	cfg.LastEventID = "garbage"
	d3 := startDevice(t, cfg)
	d3.waitConnected(t)
	mustNotify(t, e.conns[0].admin, `{"device":"laptop-7","data":5}`)
	if got := d3.waitEvents(t, 1); !reflect.DeepEqual(got, []string{"5"}) {
		t.Errorf("device with a bad Last-Event-ID got %v, want only the new [5]", got)
	}
}

// TestNotificationCatchUpAfterConnectorRejoins: a connector's tunnel to one
// instance drops while the device's channel there stays open; what the
// connector sends meanwhile reaches the device when the tunnel is back.
func TestNotificationCatchUpAfterConnectorRejoins(t *testing.T) {
	e, token := notifyEnv(t, envOptions{connectors: 1})
	// cp2 reaches both instances through proxies the test can cut.
	l0, l1 := listenPair(t)
	p0 := newTCPProxy(t, l0, e.m.Gateways[0].TunnelTCP)
	newTCPProxy(t, l1, e.m.Gateways[1].TunnelTCP)
	cfg := demo.ConnectorConfig(e.m, 1)
	cfg.Gateway.TCPPortBase = l0.Addr().(*net.TCPAddr).Port
	e.conns = append(e.conns, e.startConnector(cfg))
	e.waitSessions(2)

	d := startDevice(t, notifyclient.Config{URLs: []string{e.m.Gateways[0].ClientURL}, TLS: deviceTLS(t, e.m, false), Token: token("pc-1")})
	d.waitConnected(t)
	mustNotify(t, e.conns[1].admin, `{"device":"pc-1","data":1}`)
	d.waitEvents(t, 1)

	p0.cut()
	waitFor(t, "cp2 gone from instance 0", 10*time.Second, func() bool {
		return len(gatewayStatus(t, e.gws[0].admin).Connectors) == 1
	})
	res := mustNotify(t, e.conns[1].admin, `{"device":"pc-1","data":2}`)
	if res.Instances[0].Status != "not_connected" || res.Delivered != 0 || !res.Buffered {
		t.Fatalf("report while cut: %+v, want instance 0 not connected, buffered", res)
	}
	mustNotify(t, e.conns[0].admin, `{"device":"pc-1","data":3}`)
	d.waitEvents(t, 2)

	p0.restore(t)
	d.waitEvents(t, 3)
	mustNotify(t, e.conns[1].admin, `{"device":"pc-1","data":4}`)
	d.waitEvents(t, 4)
	time.Sleep(200 * time.Millisecond)
	if got := d.data(); !reflect.DeepEqual(got, []string{"1", "3", "2", "4"}) {
		t.Errorf("device got %v, want [1 3 2 4]: the missed 2 caught up once, before 4", got)
	}
	if st := d.c.Stats(); st.Connects != 1 {
		t.Errorf("the device reconnected (%d connects): the catch-up must reach the open channel", st.Connects)
	}
}

// TestNotificationSitesAreSeparate: with two sites, a connector reaches only its
// own site's devices, and a certificate device names its site with ?role=.
func TestNotificationSitesAreSeparate(t *testing.T) {
	const otherRole = "72057594037927999"
	e := newEnv(t, envOptions{gateway: func(_ int, c *gateway.Config) {
		c.Sites = append(c.Sites, gateway.SiteConfig{Name: "site2", Connectors: []string{"cpx"},
			Roles: []gateway.RoleConfig{{ID: otherRole, Kind: tunnel.ManagementPoint}}})
	}})
	pd := pki.Dir(e.m.PKIDir)
	if err := pki.IssueConnector(pd, "site2", "cpx", time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := demo.ConnectorConfig(e.m, 0)
	cfg.Name, cfg.Site = "cpx", "site2"
	cfg.TLS = connector.TLSConfig{CertFile: pd.Path(pki.ConnectorCert("cpx")), KeyFile: pd.Path(pki.ConnectorKey("cpx"))}
	cfg.Roles = cfg.Roles[:1]
	cfg.Roles[0].ID = otherRole
	cfg.Admin.Listen = "127.0.0.1:0"
	cpx := e.startConnector(cfg)
	e.waitSessions(3)

	gw := e.m.Gateways[0].ClientURL
	if r := e.curl(true, gw+"/cmg/v1/notifications"); r.status != http.StatusBadRequest || r.header.Get("CMG-Error") != "BadRequest" {
		t.Errorf("two sites, no ?role=: %d %s, want 400 BadRequest", r.status, r.header.Get("CMG-Error"))
	}
	d := startDevice(t, notifyclient.Config{URLs: []string{gw}, Query: "role=" + demo.MPRoleID, TLS: deviceTLS(t, e.m, true)})
	d.waitConnected(t)
	other := mustNotify(t, cpx.admin, `{"all":true,"data":"site2-all"}`)
	direct := mustNotify(t, cpx.admin, `{"device":"`+demo.DeviceName+`","data":"site2-direct"}`)
	mine := mustNotify(t, e.conns[0].admin, `{"all":true,"data":"site1-all"}`)
	if got := d.waitEvents(t, 1); !reflect.DeepEqual(got, []string{`"site1-all"`}) {
		t.Errorf("site1 device got %v, want only site1's broadcast", got)
	}
	if other.Delivered != 0 || direct.Delivered != 0 || !slices.Equal(direct.NotConnected, []string{demo.DeviceName}) {
		t.Errorf("site2 reached a site1 device: %+v / %+v", other, direct)
	}
	if mine.Delivered != 1 {
		t.Errorf("site1 broadcast delivered %d, want 1", mine.Delivered)
	}
}

// TestNotificationErrors: the device side and the notify API answer the error
// contract.
func TestNotificationErrors(t *testing.T) {
	tokenFile := t.TempDir() + "/notify-token"
	if err := writeFile(tokenFile, "s3cret-notify-token-0123456789\n"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{connector: func(j int, c *connector.Config) {
		c.Notify.MaxDevices = 2
		if j == 1 {
			c.Notify.TokenFile = tokenFile
		}
	}})
	gw := e.m.Gateways[0].ClientURL
	for _, tc := range []struct {
		name   string
		cert   bool
		path   string
		args   []string
		status int
		reason string
	}{
		{"POST", true, "/cmg/v1/notifications", []string{"-X", "POST"}, 405, "MethodNotAllowed"},
		{"no credentials", false, "/cmg/v1/notifications", nil, 403, "ClientCertificateRequired"},
		{"bad token", false, "/cmg/v1/notifications", []string{"-H", "Authorization: Bearer nope"}, 401, "InvalidToken"},
		{"unknown role", true, "/cmg/v1/notifications?role=123", nil, 404, "RouteNotFound"},
		{"replay path is the connector's", true, "/cmg/v1/notifications/replay", []string{"-X", "POST"}, 404, "RouteNotFound"},
	} {
		t.Run("device "+tc.name, func(t *testing.T) {
			r := e.curl(tc.cert, gw+tc.path, tc.args...)
			if r.status != tc.status || r.header.Get("CMG-Error") != tc.reason {
				t.Errorf("got %d %q, want %d %q (%s)", r.status, r.header.Get("CMG-Error"), tc.status, tc.reason, r.body)
			}
		})
	}
	big := `{"all":true,"data":"` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name   string
		conn   int
		body   string
		header []string
		status int
	}{
		{"not JSON", 0, `{`, nil, 400},
		{"unknown field", 0, `{"all":true,"data":1,"ttl":"1m"}`, nil, 400},
		{"two targets", 0, `{"all":true,"device":"a","data":1}`, nil, 400},
		{"no target", 0, `{"data":1}`, nil, 400},
		{"no data", 0, `{"all":true}`, nil, 400},
		{"bad event name", 0, `{"all":true,"event":"a b","data":1}`, nil, 400},
		{"control character in device", 0, `{"device":"a\u0001","data":1}`, nil, 400},
		{"payload over max_payload", 0, big, nil, 413},
		{"more devices than max_devices", 0, `{"devices":["a","b","c"],"data":1}`, nil, 413},
		{"duplicates count once", 0, `{"devices":["a","b","a"],"data":1}`, nil, 200},
		{"token required", 1, `{"all":true,"data":1}`, nil, 401},
		{"wrong token", 1, `{"all":true,"data":1}`, []string{"Authorization", "Bearer wrong-token-0123456789"}, 401},
		{"right token", 1, `{"all":true,"data":1}`, []string{"Authorization", "Bearer s3cret-notify-token-0123456789"}, 200},
	} {
		t.Run("api "+tc.name, func(t *testing.T) {
			code, res := postNotify(t, e.conns[tc.conn].admin, tc.body, tc.header...)
			if code != tc.status {
				t.Errorf("status %d, want %d", code, tc.status)
			}
			if code == 200 && tc.name == "duplicates count once" && !slices.Equal(res.NotConnected, []string{"a", "b"}) {
				t.Errorf("not connected %v, want [a b]", res.NotConnected)
			}
		})
	}
}

// TestNotificationMetrics: the families of DESIGN section 11 are exported and
// move.
func TestNotificationMetrics(t *testing.T) {
	e, token := notifyEnv(t, envOptions{})
	d := startDevice(t, notifyclient.Config{URLs: []string{e.m.Gateways[1].ClientURL}, TLS: deviceTLS(t, e.m, false), Token: token("m-1")})
	d.waitConnected(t)
	mustNotify(t, e.conns[0].admin, `{"devices":["m-1","absent"],"data":1}`)
	d.waitEvents(t, 1)
	waitFor(t, "a heartbeat", 5*time.Second, func() bool { return d.c.Stats().Heartbeats > 0 })
	fams := scrape(t, e.gws[1].admin)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cmg_gateway_notification_channels", nil, 1},
		{"cmg_gateway_notifications_total", []string{"result", "delivered"}, 1},
		{"cmg_gateway_notifications_total", []string{"result", "not_connected"}, 1},
		{"cmg_gateway_notifications_total", []string{"result", "failed"}, 0},
		{"cmg_notification_delivery_seconds", nil, 1},
	} {
		if fams[c.name] == nil {
			t.Errorf("%s is not exported", c.name)
			continue
		}
		if got := metricValue(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	d.stop()
	// The instance notices the device left at its next heartbeat at the latest.
	waitChannels(t, e.gws[1].admin, 0, 5*time.Second)
}

// TestNotificationSlowDeviceIsCut: a device that stops reading does not hold the
// instance's writers or memory: once its socket is full and its queue is at the
// limit, its channel is cut (the device resumes from the buffer when it reads
// again); other devices keep getting their events.
func TestNotificationSlowDeviceIsCut(t *testing.T) {
	e, token := notifyEnv(t, envOptions{
		gateway: func(_ int, c *gateway.Config) {
			c.Notify.QueueLimit = 4
			c.Notify.WriteTimeout = 500 * time.Millisecond
			c.Notify.Writers = 2
		},
		connector: func(_ int, c *connector.Config) { c.Notify.MaxPayload = 60 << 10 },
	})
	gw := e.m.Gateways[0]
	// The stuck device: a small receive buffer; it sends its request, then
	// never reads.
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := tls.DialWithDialer(d, "tcp", strings.TrimPrefix(gw.ClientURL, "https://"), deviceTLS(t, e.m, false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /cmg/v1/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", token("stuck"))
	healthy := startDevice(t, notifyclient.Config{URLs: []string{gw.ClientURL}, TLS: deviceTLS(t, e.m, false), Token: token("healthy")})
	healthy.waitConnected(t)
	waitChannels(t, gw.AdminURL, 2, 10*time.Second)

	big := strings.Repeat("x", 50<<10)
	const events = 100 // 5 MB: more than the socket buffers hold
	for i := range events {
		mustNotify(t, e.conns[0].admin, fmt.Sprintf(`{"devices":["stuck","healthy"],"data":{"i":%d,"pad":%q}}`, i, big))
	}
	healthy.waitEvents(t, events)
	waitChannels(t, gw.AdminURL, 1, 10*time.Second)
	fams := scrape(t, gw.AdminURL)
	cut := metricValue(fams, "cmg_gateway_notifications_total", "result", "dropped") +
		metricValue(fams, "cmg_gateway_notifications_total", "result", "failed")
	if cut == 0 {
		t.Error("no event was counted dropped or failed for the stuck device")
	}
	if got := len(healthy.data()); got != events {
		t.Errorf("the healthy device got %d events, want %d", got, events)
	}
}
