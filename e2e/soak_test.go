package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSoak (SECURITY.md, "Soak"): steady device load through both gateway
// instances while connector cp1 restarts (drain, then up again) every 20 s and
// devices reconnect all the time; then no growth in goroutines, descriptors
// or memory of the processes that lived through it (both gateways, cp2, the
// roles) between the start and the end, both measured at rest. CI runs 2
// minutes; by hand:
//
//	CMG_SOAK=20m CMG_SOAK_REPORT=soak.json go test ./e2e -run TestSoak -timeout 40m -v
//
// (scripts/soak does that).
func TestSoak(t *testing.T) {
	dur := 2 * time.Minute
	if v := os.Getenv("CMG_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CMG_SOAK=%q: %v", v, err)
		}
		dur = d
	}
	if testing.Short() {
		t.Skip("runs for CMG_SOAK (2m)")
	}
	e := newProcEnv(t)
	gws, conns := e.startAll()
	var roles *proc
	for _, p := range e.procs {
		if p.name == "roles" {
			roles = p
		}
	}
	type watched struct {
		name  string
		p     *proc
		admin string
	}
	ws := []watched{{"gateway-0", gws[0], e.m.Gateways[0].AdminURL}, {"gateway-1", gws[1], e.m.Gateways[1].AdminURL},
		{"connector-cp2", conns[1], e.m.Connectors[1].AdminURL}, {"roles", roles, ""}}

	l := newSoakLoad(t, e)
	// Warm up (pools, TLS session state, the cost model's first windows), then
	// the baseline at rest.
	l.run(15 * time.Second)
	rest := func() map[string]soakSample {
		l.quiesce()
		out := map[string]soakSample{}
		for _, w := range ws {
			out[w.name] = sampleProcess(t, w.p, w.admin)
		}
		return out
	}
	start := rest()

	deadline := time.Now().Add(dur)
	churns := 0
	for time.Now().Before(deadline) {
		l.run(min(20*time.Second, time.Until(deadline)))
		if time.Until(deadline) < 5*time.Second {
			break
		}
		// Connector churn: cp1 drains and comes back, under load.
		l.start()
		conns[0].kill(syscall.SIGTERM)
		conns[0].restart()
		for i, g := range e.m.Gateways {
			waitFor(t, fmt.Sprintf("cp1 back on gateway %d", i), 30*time.Second, func() bool {
				st, ok := tryStatus(g.AdminURL)
				return ok && st.has("cp1")
			})
		}
		l.pause()
		churns++
	}
	end := rest()

	var b strings.Builder
	fmt.Fprintf(&b, "soak %v: %d requests ok, %d failed, %d connector restarts, %d device reconnects\n",
		dur, l.ok.Load(), l.failed.Load(), churns, l.reconnects.Load())
	fmt.Fprintf(&b, "%-14s %22s %22s %26s %26s\n", "process", "goroutines start→end", "descriptors start→end", "heap in use start→end", "RSS start→end")
	for _, w := range ws {
		s, f := start[w.name], end[w.name]
		fmt.Fprintf(&b, "%-14s %10d → %-9d %10d → %-9d %12s → %-11s %12s → %-11s\n", w.name, s.Goroutines, f.Goroutines, s.FDs, f.FDs, mib(s.Heap), mib(f.Heap), mib(s.RSS), mib(f.RSS))
	}
	t.Log("\n" + b.String())
	if path := os.Getenv("CMG_SOAK_REPORT"); path != "" {
		data, _ := json.MarshalIndent(map[string]any{"duration": dur.String(), "ok": l.ok.Load(), "failed": l.failed.Load(),
			"connector_restarts": churns, "device_reconnects": l.reconnects.Load(), "start": start, "end": end}, "", "  ")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Error(err)
		}
	}
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the soak, want 0; first: %v", n, l.failures)
	}
	if churns == 0 {
		t.Errorf("no connector restart happened during the soak")
	}
	for _, w := range ws {
		s, f := start[w.name], end[w.name]
		if w.admin != "" && f.Goroutines > s.Goroutines+10 {
			t.Errorf("%s: goroutines grew from %d to %d", w.name, s.Goroutines, f.Goroutines)
		}
		if f.FDs > s.FDs+5 {
			t.Errorf("%s: descriptors grew from %d to %d", w.name, s.FDs, f.FDs)
		}
		if w.admin != "" && f.Heap > s.Heap+s.Heap/2+8<<20 {
			t.Errorf("%s: heap in use grew from %s to %s", w.name, mib(s.Heap), mib(f.Heap))
		}
		if f.RSS > 2*s.RSS+32<<20 {
			t.Errorf("%s: RSS grew from %s to %s", w.name, mib(s.RSS), mib(f.RSS))
		}
	}
}

// soakSample is one process measured at rest.
type soakSample struct {
	Goroutines int   `json:"goroutines,omitempty"`
	FDs        int   `json:"descriptors"`
	Heap       int64 `json:"heap_inuse_bytes,omitempty"`
	RSS        int64 `json:"rss_bytes"`
}

// sampleProcess forces a GC in the process (pprof's heap?gc=1) and reads its
// goroutines and heap from /metrics; descriptors and RSS from /proc.
func sampleProcess(t *testing.T, p *proc, admin string) soakSample {
	t.Helper()
	var s soakSample
	if admin != "" {
		if resp, err := httpGetQuick(admin + "/debug/pprof/heap?gc=1"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		fams := scrape(t, admin)
		s.Goroutines = int(metricValue(fams, "go_goroutines"))
		s.Heap = int64(metricValue(fams, "go_memstats_heap_inuse_bytes"))
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	s.FDs = len(ents)
	s.RSS = p.rss()
	return s
}

// soakLoad is the devices of the soak: workers mixing policy polls, uploads
// and downloads through both instances, reconnecting every few requests (one
// worker on a new connection for every request).
type soakLoad struct {
	t          *testing.T
	urls       []string
	clients    []*http.Client
	state      atomic.Int32 // soakPaused, soakRunning, soakStopped
	ok, failed atomic.Int64
	reconnects atomic.Int64
	mu         sync.Mutex
	failures   []string
	wg         sync.WaitGroup
}

const (
	soakPaused = iota
	soakRunning
	soakStopped
)

func newSoakLoad(t *testing.T, e *procEnv) *soakLoad {
	l := &soakLoad{t: t}
	for _, g := range e.m.Gateways {
		l.urls = append(l.urls, g.ClientURL)
	}
	for w := 0; w < 6; w++ {
		c := deviceClient(t, e.m, true)
		if w == 0 {
			c.Transport.(*http.Transport).DisableKeepAlives = true
		}
		l.clients = append(l.clients, c)
	}
	upload := bytes.Repeat([]byte("soak "), 16<<10/5)
	paths := []string{e.m.ExamplePath, e.m.ExamplePath, mpPrefix + "/cmg-sink", mpPrefix + "/cmg-blob?size=262144"}
	for w, c := range l.clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				switch l.state.Load() {
				case soakStopped:
					return
				case soakPaused:
					time.Sleep(20 * time.Millisecond)
					continue
				}
				path := paths[(w+i)%len(paths)]
				var req *http.Request
				if strings.HasSuffix(path, "cmg-sink") {
					req, _ = http.NewRequest("CCM_POST", l.urls[i%2]+path, bytes.NewReader(upload))
				} else {
					req, _ = http.NewRequest(http.MethodGet, l.urls[i%2]+path, nil)
				}
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%s %s: %d %s", req.Method, path, resp.StatusCode, resp.Header.Get("CMG-Error"))
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						l.failures = append(l.failures, err.Error())
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
				if i%25 == 24 {
					c.CloseIdleConnections()
					l.reconnects.Add(1)
				}
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *soakLoad) start() { l.state.Store(soakRunning) }

func (l *soakLoad) pause() { l.state.Store(soakPaused) }

func (l *soakLoad) run(d time.Duration) {
	l.start()
	time.Sleep(d)
	l.pause()
}

// quiesce pauses the load, lets the requests in flight end and drops the
// devices' idle connections, so the processes are measured at rest.
func (l *soakLoad) quiesce() {
	l.pause()
	time.Sleep(2 * time.Second)
	for _, c := range l.clients {
		c.CloseIdleConnections()
	}
	time.Sleep(2 * time.Second)
}

func (l *soakLoad) stop() {
	l.state.Store(soakStopped)
	l.wg.Wait()
}
