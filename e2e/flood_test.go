package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/demo"
)

// The connection flood (SECURITY.md, "Limits"): 18,000 device connections held
// open at once against one gateway process, each with its TLS handshake done
// and half a request header sent, the most a connection costs before the
// header timeout. The flood comes from two helper processes (this test binary
// run again), 9,000 connections each, so no process nears the 20,000
// descriptors it may hold; each connection has its own loopback source address
// spread over 127.10.0.0/16 and 127.11.0.0/16.

const (
	floodEnv        = "CMG_FLOOD_CLIENT" // addr,count,secondOctet
	floodPerProcess = 9000
)

// runFloodClient is the helper process: it opens the connections, prints
// "ready N" and holds them until its stdin closes.
func runFloodClient(spec string) int {
	parts := strings.Split(spec, ",")
	addr := parts[0]
	count, _ := strconv.Atoi(parts[1])
	octet, _ := strconv.Atoi(parts[2])
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, ClientSessionCache: nil}
	var conns []net.Conn
	var mu sync.Mutex
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < count; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			src := net.IPv4(127, byte(octet), byte(i/250), byte(1+i%250))
			d := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
			c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
			if err == nil {
				_, err = io.WriteString(c, "GET /CCM_Proxy_MutualAuth/"+demo.MPRoleID+"/cmg-echo HTTP/1.1\r\nHost: localhost\r\n")
			}
			if err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	fmt.Printf("ready %d failed %d\n", len(conns), failed.Load())
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

// floodProc is one running helper.
type floodProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan string
}

func startFlood(t *testing.T, addr string, count, octet int) *floodProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d", floodEnv, addr, count, octet))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &floodProc{cmd: cmd, stdin: stdin, ready: make(chan string, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				p.ready <- sc.Text()
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *floodProc) stop() {
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
}

// rss is a process's resident set in bytes (VmRSS).
func (p *proc) rss() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	p.t.Fatalf("%s: no VmRSS", p.name)
	return 0
}

func TestConnectionFloodMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 18,000 connections")
	}
	e := newProcEnv(t)
	// Long header and handshake timeouts, so the flood is all there at once.
	e.editGatewayConfigs(t, "client:\n  read_header_timeout: 2m\nlimits:\n  handshake_timeout: 2m\n")
	gws, _ := e.startAll()
	gw := gws[0]
	addr := clientAddr(e.m, 0)
	admin := e.m.Gateways[0].AdminURL
	if r, err := deviceClient(t, e.m, true).Get(e.m.Gateways[0].ClientURL + e.m.ExamplePath); err != nil || r.StatusCode != 200 {
		t.Fatalf("before the flood: %v", err)
	}
	base := gw.rss()

	start := time.Now()
	floods := []*floodProc{startFlood(t, addr, floodPerProcess, 10), startFlood(t, addr, floodPerProcess, 11)}
	held := 0
	for _, f := range floods {
		select {
		case line := <-f.ready:
			var ok, failed int
			fmt.Sscanf(line, "ready %d failed %d", &ok, &failed)
			held += ok
			if failed != 0 {
				t.Errorf("a flood process could not open %d connections", failed)
			}
		case <-time.After(5 * time.Minute):
			t.Fatal("the flood did not get its connections up in 5 minutes")
		}
	}
	took := time.Since(start)
	var conns float64
	waitFor(t, "the gateway to count the flood", 30*time.Second, func() bool {
		conns = metricValue(scrape(t, admin), "cmg_gateway_client_connections")
		return conns >= float64(held)
	})
	peak := gw.rss()
	// The gateway still answers a device while the flood holds its connections.
	resp, err := deviceClient(t, e.m, true).Get(e.m.Gateways[0].ClientURL + e.m.ExamplePath)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("a device during the flood: %v", err)
	} else {
		resp.Body.Close()
	}
	perConn := float64(peak-base) / float64(held)
	t.Logf("flood: %d TLS connections with half a header, up in %v; gateway RSS %s before, %s with them open (%.1f KiB per connection); cmg_gateway_client_connections %v",
		held, took.Round(time.Second), mib(base), mib(peak), perConn/1024, conns)
	if held != 2*floodPerProcess {
		t.Errorf("held %d connections, want %d", held, 2*floodPerProcess)
	}
	const limit = 1 << 30 // 665 MiB measured (36.6 KiB per connection) on a 2-core machine
	if peak > limit {
		t.Errorf("gateway RSS %s at %d connections, want under %s", mib(peak), held, mib(limit))
	}
	for _, f := range floods {
		f.stop()
	}
	waitFor(t, "the flood's connections to be gone", 60*time.Second, func() bool {
		// The test's own device client may keep a connection alive.
		return metricValue(scrape(t, admin), "cmg_gateway_client_connections") <= 2
	})
}

// editGatewayConfigs appends YAML to every gateway configuration of the env
// by rewriting it merged: the keys given replace the demo's.
func (e *procEnv) editGatewayConfigs(t *testing.T, overlay string) {
	t.Helper()
	for i, g := range e.m.Gateways {
		cfg := demo.GatewayConfig(e.m, i)
		if err := mergeYAML(&cfg, overlay); err != nil {
			t.Fatal(err)
		}
		e.m.Gateways[i].Config = writeYAMLFile(t, fmt.Sprintf("gateway-%d.yaml", g.Instance), cfg)
	}
}

// mergeYAML decodes overlay into v strictly, replacing only the keys it
// names, and validates the result.
func mergeYAML(v any, overlay string) error {
	return configfile.Decode("overlay", []byte(overlay), v)
}
