package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/notifyclient"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// postNotify calls a connector's POST /api/v1/notify.
func postNotify(t testing.TB, adminURL, body string, header ...string) (int, connector.NotifyResult) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, adminURL+"/api/v1/notify", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var res connector.NotifyResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatalf("notify answer %s: %v", raw, err)
		}
	}
	return resp.StatusCode, res
}

// mustNotify posts and requires 200.
func mustNotify(t testing.TB, adminURL, body string) connector.NotifyResult {
	t.Helper()
	code, res := postNotify(t, adminURL, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s/api/v1/notify %s: status %d", adminURL, body, code)
	}
	return res
}

// siteKey makes a site signing key for the demo site and writes its public key
// where a gateway configuration can name it.
func siteKey(t testing.TB) (pubFile string, iss *sitetoken.Issuer) {
	t.Helper()
	key, err := sitetoken.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubFile = filepath.Join(t.TempDir(), "site-key.pub.pem")
	if err := sitetoken.WritePublicKey(pubFile, &key.PublicKey); err != nil {
		t.Fatal(err)
	}
	if iss, err = sitetoken.NewIssuer(key, "", demo.SiteCode); err != nil {
		t.Fatal(err)
	}
	return pubFile, iss
}

func deviceToken(t testing.TB, iss *sitetoken.Issuer, device string) string {
	t.Helper()
	tok, err := iss.Issue(sitetoken.Device, device, sitetoken.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// device is one notifyclient run in the test, recording what it receives.
type device struct {
	c      *notifyclient.Client
	mu     sync.Mutex
	events []notifyclient.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func startDevice(t testing.TB, cfg notifyclient.Config) *device {
	t.Helper()
	d := &device{done: make(chan struct{})}
	cfg.OnEvent = func(ev notifyclient.Event) {
		d.mu.Lock()
		d.events = append(d.events, ev)
		d.mu.Unlock()
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	}
	c, err := notifyclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { _ = c.Run(ctx); close(d.done) }()
	t.Cleanup(d.stop)
	return d
}

func (d *device) stop() {
	d.cancel()
	<-d.done
}

// data is the data of every event received, in order.
func (d *device) data() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []string{}
	for _, ev := range d.events {
		out = append(out, string(ev.Data))
	}
	return out
}

func (d *device) waitEvents(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(d.data()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("device got %v, want %d events", d.data(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d.data()
}

func (d *device) waitConnected(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !d.c.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("the device never opened its channel: %+v", d.c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitChannels waits until a gateway's cmg_gateway_notification_channels is n.
func waitChannels(t testing.TB, adminURL string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := metricValue(scrape(t, adminURL), "cmg_gateway_notification_channels")
		if got == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %v channels after %v, want %d", adminURL, got, limit, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpProxy forwards a fixed local address to a target until cut.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newTCPProxy(t *testing.T, ln net.Listener, target string) *tcpProxy {
	p := &tcpProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *tcpProxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// listenPair listens on two consecutive free loopback ports.
func listenPair(t *testing.T) (net.Listener, net.Listener) {
	for range 100 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err == nil {
			return a, b
		}
		a.Close()
	}
	t.Fatal("no two consecutive free ports")
	return nil, nil
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
