package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/tunnel"
)

// The network of TestProxyOnlyNetwork: two namespaces joined by a veth pair.
//
//	site (10.213.7.2)                              cloud (10.213.7.1)
//	connector, roles ──veth── nftables drops ──▶   tunnel ports ─▶ relay ─▶ gateways (127.0.0.1, this process)
//	                  └─────── allowed ───────▶   tinyproxy :3128 ─────────┘
//
// The gateways run in this process on loopback; the relay is this process
// holding listeners inside the cloud namespace, so the cloud namespace's
// addresses reach them. The connector's only way out is tinyproxy.
const (
	cloudIP   = "10.213.7.1"
	siteIP    = "10.213.7.2"
	proxyPort = 3128
)

// netnsPair creates the two namespaces and the veth pair, and removes them
// (with their nftables rules) when the test ends, whatever happens.
type netnsPair struct {
	site, cloud string
}

func newNetnsPair(t *testing.T) *netnsPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test builds network namespaces and needs root (CI runs as root)")
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	n := &netnsPair{site: "cmgsite" + id, cloud: "cmgcloud" + id}
	t.Cleanup(func() {
		for _, ns := range []string{n.site, n.cloud} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	vs, vc := "vs"+id, "vc"+id
	for _, args := range [][]string{
		{"netns", "add", n.site},
		{"netns", "add", n.cloud},
		{"link", "add", vs, "netns", n.site, "type", "veth", "peer", "name", vc, "netns", n.cloud},
		{"-n", n.site, "addr", "add", siteIP + "/24", "dev", vs},
		{"-n", n.cloud, "addr", "add", cloudIP + "/24", "dev", vc},
		{"-n", n.site, "link", "set", vs, "up"},
		{"-n", n.cloud, "link", "set", vc, "up"},
		{"-n", n.site, "link", "set", "lo", "up"},
		{"-n", n.cloud, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return n
}

// nft runs an nftables script in namespace ns.
func (n *netnsPair) nft(t *testing.T, ns, script string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\n%s", ns, err, out, script)
	}
}

// listenIn opens a TCP listener inside namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread enters ns just long enough to create the socket. If it
		// cannot go back it stays locked and dies with this goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// relay forwards connections accepted inside ns on ip:port to 127.0.0.1:port
// here, until the test ends.
func relay(t *testing.T, ns, ip string, port int) {
	t.Helper()
	ln, err := listenIn(ns, fmt.Sprintf("%s:%d", ip, port))
	if err != nil {
		t.Fatalf("relay listener in %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// nsProc is a process run inside a namespace.
type nsProc struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startInNetns(t *testing.T, ns, name string, argv ...string) *nsProc {
	t.Helper()
	p := &nsProc{log: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			printTail(t, name, p.log, 30)
		}
	})
	return p
}

// curlIn runs the real curl inside ns and returns its output.
func curlIn(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "curl", "-sS", "--max-time", "3"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestProxyOnlyNetwork: with every direct path from the connector to the
// gateway dropped, the connector comes up over HTTPS through an authenticating
// tinyproxy and requests flow; as the rules are lifted it moves up to HTTPS
// direct, then to TCP-TLS, without a failed request.
func TestProxyOnlyNetwork(t *testing.T) {
	n := newNetnsPair(t)
	e := newGatewaysOnly(t, nil)
	m := e.m
	var tunnelPorts []string
	for _, g := range m.Gateways {
		for _, a := range []string{g.TunnelTCP, g.TunnelHTTPS} {
			relay(t, n.cloud, cloudIP, portOf(t, a))
			tunnelPorts = append(tunnelPorts, fmt.Sprint(portOf(t, a)))
		}
	}
	// Every tunnel port of every instance is dropped on the way out of the site.
	tcpPorts := fmt.Sprintf("%d, %d", portOf(t, m.Gateways[0].TunnelTCP), portOf(t, m.Gateways[1].TunnelTCP))
	httpsPorts := fmt.Sprintf("%d, %d", portOf(t, m.Gateways[0].TunnelHTTPS), portOf(t, m.Gateways[1].TunnelHTTPS))
	n.nft(t, n.site, fmt.Sprintf(`table inet cmg_block_tcp {
	chain out { type filter hook output priority 0; policy accept; ip daddr %s tcp dport { %s } drop; }
}
table inet cmg_block_https {
	chain out { type filter hook output priority 0; policy accept; ip daddr %s tcp dport { %s } drop; }
}
`, cloudIP, tcpPorts, cloudIP, httpsPorts))
	for _, p := range tunnelPorts {
		if out, err := curlIn(n.site, "--connect-timeout", "1", "-o", "/dev/null", "https://"+cloudIP+":"+p); err == nil || !strings.Contains(out, "(28)") {
			t.Fatalf("the site reaches tunnel port %s directly (%v: %s), want it dropped", p, err, out)
		}
	}

	// tinyproxy in the cloud namespace, with basic auth; the site reaches it.
	password := filepath.Join(t.TempDir(), "proxy-password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "tinyproxy.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("Port %d\nListen %s\nTimeout 600\nMaxClients 100\nLogLevel Connect\nUser nobody\nGroup nogroup\nBasicAuth cmg s3cret\nConnectPort %s\nConnectPort %s\n",
		proxyPort, cloudIP, fmt.Sprint(portOf(t, m.Gateways[0].TunnelHTTPS)), fmt.Sprint(portOf(t, m.Gateways[1].TunnelHTTPS)))), 0o644); err != nil {
		t.Fatal(err)
	}
	tp := startInNetns(t, n.cloud, "tinyproxy", "tinyproxy", "-d", "-c", conf)
	waitFor(t, "tinyproxy in the cloud namespace", 10*time.Second, func() bool {
		_, err := curlIn(n.site, "-o", "/dev/null", "http://"+cloudIP+fmt.Sprintf(":%d/", proxyPort))
		return err == nil
	})

	// The on-prem roles and the connector in the site namespace.
	rolesAddr := fmt.Sprintf("127.0.0.1:%d", portOf(t, m.Roles.Listen))
	startInNetns(t, n.site, "roles", cmgBinary, "loadtest", "roles", "-listen", rolesAddr)
	adminAddr := fmt.Sprintf("127.0.0.1:%d", portOf(t, m.Connectors[0].AdminURL[len("http://"):]))
	path := writeConnectorConfig(t, m, 0, func(c *connector.Config) {
		c.Gateway.Host = cloudIP
		c.Gateway.ServerName = "127.0.0.1" // a name the demo gateway certificate carries
		c.Gateway.ConnectTimeout = time.Second
		c.Gateway.RetryPreferred = time.Second
		c.Gateway.Proxy = connector.ProxyConfig{URL: fmt.Sprintf("http://%s:%d", cloudIP, proxyPort), Username: "cmg", PasswordFile: password}
		for i := range c.Roles {
			c.Roles[i].URL = strings.Replace(c.Roles[i].URL, m.Roles.Listen, rolesAddr, 1)
			c.Roles[i].HealthURL = strings.Replace(c.Roles[i].HealthURL, m.Roles.Listen, rolesAddr, 1)
		}
		c.Admin = admin.Config{Listen: adminAddr, Pprof: false}
	})
	startInNetns(t, n.site, "connector", cmgBinary, "connector", "-config", path)

	transports := func() []string {
		var out []string
		for _, g := range e.gws {
			for _, c := range gatewayStatus(t, g.admin).Connectors {
				out = append(out, c.Transport)
			}
		}
		return out
	}
	onAll := func(want string) func() bool {
		return func() bool {
			got := transports()
			if len(got) != len(e.gws) {
				return false
			}
			for _, g := range got {
				if g != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "cp1 on every instance through the proxy", 30*time.Second, onAll(tunnel.TransportProxy))
	if r := e.curl(true, m.Gateways[0].ClientURL+m.ExamplePath); r.status != 200 {
		t.Fatalf("device request over the proxied tunnel: %d %s", r.status, r.stderr)
	}
	status, err := curlIn(n.site, "http://"+adminAddr+"/api/v1/status")
	if err != nil || !regexp.MustCompile(`"transport":\s*"https_proxy"`).MatchString(status) {
		t.Errorf("the connector's own status does not show https_proxy: %v\n%s", err, status)
	}
	tpLog, _ := os.ReadFile(tp.log)
	if !strings.Contains(string(tpLog), "CONNECT") {
		t.Errorf("tinyproxy's log shows no CONNECT:\n%s", tpLog)
	}

	l := startLoad(t, e.deviceClient(true), []string{m.Gateways[0].ClientURL + m.ExamplePath, m.Gateways[1].ClientURL + m.ExamplePath}, 4)
	defer l.stop()
	n.nft(t, n.site, "delete table inet cmg_block_https\n")
	waitFor(t, "cp1 to move up to HTTPS direct", 20*time.Second, onAll(tunnel.TransportHTTPS))
	n.nft(t, n.site, "delete table inet cmg_block_tcp\n")
	waitFor(t, "cp1 to move up to TCP-TLS", 20*time.Second, onAll(tunnel.TransportTCPTLS))
	before := l.ok.Load()
	waitFor(t, "requests over TCP-TLS", 10*time.Second, func() bool { return l.ok.Load() > before+50 })
	l.stop()
	t.Logf("requests while the connector moved up the ladder: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed while the connector moved up, want 0; first: %v", n, l.failures)
	}
	metrics := scrape(t, e.gws[0].admin)
	for _, tr := range []string{tunnel.TransportProxy, tunnel.TransportHTTPS, tunnel.TransportTCPTLS} {
		if v := metricValue(metrics, "cmg_tunnel_connects_total", "connector", "cp1", "transport", tr, "result", "success"); v < 1 {
			t.Errorf("cmg_tunnel_connects_total{transport=%q} = %v, want at least 1", tr, v)
		}
	}
	if v := metricValue(metrics, "cmg_tunnel_sessions", "connector", "cp1", "transport", tunnel.TransportTCPTLS); v != 1 {
		t.Errorf("cmg_tunnel_sessions{connector=cp1,transport=tcp_tls} = %v, want 1", v)
	}
}
