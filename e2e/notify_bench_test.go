package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/pki"
)

// BenchmarkNotificationChannelMemory measures what one idle notification
// channel costs the gateway, TLS included, at 1,000 and at 18,000 channels
// (this machine allows 20,000 descriptors per process), next to a plain Go
// net/http TLS server holding the same idle channels the straightforward way
// (testdata/plainsse: a handler goroutine per channel waiting on its heartbeat
// ticker), in the same run and with the same devices (testdata/notifyswarm).
// It is a benchmark, not a unit test; run it alone:
//
//	go test ./e2e -run '^$' -bench NotificationChannelMemory -benchtime 1x
//
// Per channel = growth of the process's resident set (VmRSS) over the
// channels, and of the Go heap and stacks in use after a GC.
func BenchmarkNotificationChannelMemory(b *testing.B) {
	for range b.N {
		benchChannelMemory(b)
	}
}

// memPoint is one server's memory with some channels open.
type memPoint struct {
	channels   int
	rss, heap  int64
	goroutines int
}

func benchChannelMemory(b *testing.B) {
	steps := []int{1000, 18000}
	e := newProcEnv(b)
	iss := e.withSiteTokens()
	gws, _ := e.startAll()
	swarmBin := buildTestProgram(b, "notifyswarm")
	plainBin := buildTestProgram(b, "plainsse")
	tokens := make([]string, steps[len(steps)-1])
	for i := range tokens {
		tokens[i] = deviceToken(b, iss, devName(i))
	}
	gwAdmin := e.m.Gateways[0].AdminURL
	gwMem := func(channels int) memPoint {
		// A heap profile with gc=1 makes the gateway collect first.
		if resp, err := http.Get(gwAdmin + "/debug/pprof/heap?gc=1"); err == nil {
			resp.Body.Close()
		}
		fams := scrape(b, gwAdmin)
		return memPoint{
			channels:   channels,
			rss:        settledRSS(b, gws[0].cmd.Process.Pid),
			heap:       int64(metricValue(fams, "go_memstats_heap_inuse_bytes") + metricValue(fams, "go_memstats_stack_inuse_bytes")),
			goroutines: int(metricValue(fams, "go_goroutines")),
		}
	}
	gw := measureSteps(b, swarmBin, e.m.CAFile, steps, tokens, e.m.Gateways[0].ClientURL, gwMem)

	pd := pki.Dir(e.m.PKIDir)
	plain, plainURL, plainAdmin := startPlainSSE(b, plainBin, pd.Path(pki.GatewayCert), pd.Path(pki.GatewayKey))
	plainMem := func(channels int) memPoint {
		var m map[string]int64
		resp, err := http.Get(plainAdmin)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			b.Fatal(err)
		}
		if int(m["channels"]) != channels {
			b.Fatalf("the plain server holds %d channels, want %d", m["channels"], channels)
		}
		return memPoint{channels: channels, rss: settledRSS(b, plain.Process.Pid), heap: m["heap_inuse"] + m["stack_inuse"], goroutines: int(m["goroutines"])}
	}
	pl := measureSteps(b, swarmBin, e.m.CAFile, steps, make([]string, len(tokens)), plainURL, plainMem)

	var out strings.Builder
	fmt.Fprintf(&out, "\n%-9s  %-27s  %-27s\n", "channels", "cmg gateway (KiB/channel)", "plain net/http (KiB/channel)")
	fmt.Fprintf(&out, "%-9s  %-9s %-9s %-7s  %-9s %-9s %-7s\n", "", "RSS", "heap+stk", "gor.", "RSS", "heap+stk", "gor.")
	for i, n := range steps {
		g, p := perChannel(gw[0], gw[i+1]), perChannel(pl[0], pl[i+1])
		fmt.Fprintf(&out, "%-9d  %-9.1f %-9.1f %-7d  %-9.1f %-9.1f %-7d\n", n, g.rss, g.heap, gw[i+1].goroutines, p.rss, p.heap, pl[i+1].goroutines)
		b.ReportMetric(g.rss, fmt.Sprintf("gw-KiB/ch@%d", n))
		b.ReportMetric(p.rss, fmt.Sprintf("plain-KiB/ch@%d", n))
	}
	b.Log(out.String())
	last := len(steps)
	g, p := perChannel(gw[0], gw[last]), perChannel(pl[0], pl[last])
	if g.rss > 24 {
		b.Errorf("the gateway holds an idle channel in %.1f KiB at %d channels, over the 24 KiB goal", g.rss, steps[last-1])
	}
	if g.rss >= p.rss {
		b.Errorf("the gateway (%.1f KiB per channel) is not under the plain server (%.1f KiB)", g.rss, p.rss)
	}
}

type kib struct{ rss, heap float64 }

func perChannel(base, at memPoint) kib {
	n := float64(at.channels - base.channels)
	return kib{rss: float64(at.rss-base.rss) / n / 1024, heap: float64(at.heap-base.heap) / n / 1024}
}

// measureSteps opens channels to url in steps (each step a swarm of its own)
// and measures the server before and at each step. The swarms are killed at
// the end.
func measureSteps(b *testing.B, bin, caFile string, steps []int, tokens []string, url string, mem func(int) memPoint) []memPoint {
	points := []memPoint{mem(0)}
	var swarms []*swarm
	opened := 0
	for _, n := range steps {
		devs := make([]swarmDevice, n-opened)
		for k := range devs {
			i := opened + k
			devs[k] = swarmDevice{Token: tokens[i], URLs: []string{url}, IP: sourceIP(i)}
		}
		sw := startSwarm(b, bin, swarmConfig{CAFile: caFile, Devices: devs, RampPerSecond: 1500})
		sw.waitConnected(len(devs), 3*time.Minute)
		swarms = append(swarms, sw)
		opened = n
		points = append(points, mem(n))
	}
	for _, sw := range swarms {
		sw.stop()
	}
	return points
}

// settledRSS is a process's resident set once it stops moving (two readings a
// second apart within 1%, at most 15 s).
func settledRSS(b *testing.B, pid int) int64 {
	prev := vmRSS(b, pid)
	for range 15 {
		time.Sleep(time.Second)
		cur := vmRSS(b, pid)
		if d := cur - prev; d*100 < prev && -d*100 < prev {
			return cur
		}
		prev = cur
	}
	return prev
}

func vmRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS for %d", pid)
	return 0
}

// startPlainSSE runs testdata/plainsse with the gateway's certificate.
func startPlainSSE(b *testing.B, bin, cert, key string) (cmd *exec.Cmd, url, memURL string) {
	addrFile := filepath.Join(b.TempDir(), "addr")
	cmd = exec.Command(bin, "-cert", cert, "-key", key, "-addr-file", addrFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var addrs []string
	waitFor(b, "the plain server", 30*time.Second, func() bool {
		data, err := os.ReadFile(addrFile)
		addrs = strings.Fields(string(data))
		return err == nil && len(addrs) == 2
	})
	return cmd, "https://" + addrs[0], "http://" + addrs[1] + "/mem"
}
