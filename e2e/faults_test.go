package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/connector"
)

// Faults on the tunnel path (SECURITY.md, "Faults"), in network namespaces:
// this kernel has no netem, so delay comes from toxiproxy (a latency toxic each
// way) and loss from nftables numgen rules on the veth.
//
//	site namespace                          cloud namespace                    host
//	cp1 ──veth (nft: loss, partition)──▶   toxiproxy cloudIP:port ──▶ relay ──▶ gateway processes
//	 └─ relay 127.0.0.1:roles ───────────────────────────────────────────────▶ roles process
//
// cp2, when a test runs it, is on the host with a clean path.

// faultNet is the procEnv with cp1 behind the faulty path.
type faultNet struct {
	*procEnv
	ns    *netnsPair
	gws   []*proc
	toxic string // toxiproxy's API in the cloud namespace
}

func newFaultNet(t *testing.T) *faultNet {
	t.Helper()
	ns := newNetnsPair(t)
	e := newProcEnv(t)
	f := &faultNet{procEnv: e, ns: ns, toxic: "http://127.0.0.1:18474"}
	e.start("roles", "loadtest", "roles", "-listen", e.m.Roles.Listen)
	for _, g := range e.m.Gateways {
		f.gws = append(f.gws, e.start(fmt.Sprintf("gateway-%d", g.Instance), "gateway", "-config", g.Config))
	}
	relay(t, ns.site, "127.0.0.1", portOf(t, e.m.Roles.Listen))
	startInNetns(t, ns.cloud, "toxiproxy", tool(t, "toxiproxy-server"), "-host", "127.0.0.1", "-port", "18474")
	waitFor(t, "toxiproxy", 10*time.Second, func() bool {
		_, err := curlIn(ns.cloud, f.toxic+"/version")
		return err == nil
	})
	for _, g := range e.m.Gateways {
		port := portOf(t, g.TunnelTCP)
		relay(t, ns.cloud, "127.0.0.1", port)
		f.toxiproxy(t, "POST", "/proxies", fmt.Sprintf(`{"name":"gw%d","listen":"%s:%d","upstream":"127.0.0.1:%d","enabled":true}`, g.Instance, cloudIP, port, port))
	}
	return f
}

func (f *faultNet) toxiproxy(t *testing.T, method, path, body string) {
	t.Helper()
	out, err := curlIn(f.ns.cloud, "-f", "-X", method, "-H", "Content-Type: application/json", "-d", body, f.toxic+path)
	if err != nil {
		t.Fatalf("toxiproxy %s %s: %v\n%s", method, path, err, out)
	}
}

// startSiteConnector runs cp1 in the site namespace, dialing the gateways'
// TCP-TLS ports at the cloud address (through toxiproxy).
func (f *faultNet) startSiteConnector(t *testing.T) {
	t.Helper()
	m := f.m
	path := writeConnectorConfig(t, m, 0, func(c *connector.Config) {
		c.Gateway.Host = cloudIP
		c.Gateway.ServerName = "127.0.0.1"
		c.Gateway.Transports = []string{"tcp_tls"}
		c.Gateway.ConnectTimeout = 2 * time.Second
		c.Admin = admin.Config{Listen: "127.0.0.1:19200"}
	})
	startInNetns(t, f.ns.site, "connector-cp1", cmgBinary, "connector", "-config", path)
}

// sessionsWith reports whether every gateway lists exactly the connectors.
func (f *faultNet) sessionsWith(names ...string) bool {
	for _, g := range f.m.Gateways {
		st, ok := tryStatus(g.AdminURL)
		if !ok || len(st.Connectors) != len(names) {
			return false
		}
		for _, n := range names {
			if !st.has(n) {
				return false
			}
		}
	}
	return true
}

// lossRules drops pct % of the packets each way between the namespaces.
func (f *faultNet) lossRules(t *testing.T, pct int) {
	f.ns.nft(t, f.ns.site, fmt.Sprintf("table inet cmg_loss {\n chain out { type filter hook output priority 0; policy accept; ip daddr %s numgen random mod 100 < %d drop; }\n}\n", cloudIP, pct))
	f.ns.nft(t, f.ns.cloud, fmt.Sprintf("table inet cmg_loss {\n chain out { type filter hook output priority 0; policy accept; ip daddr %s numgen random mod 100 < %d drop; }\n}\n", siteIP, pct))
}

func TestTunnelDelayAndLossServeEveryRequest(t *testing.T) {
	f := newFaultNet(t)
	for _, g := range f.m.Gateways {
		for _, stream := range []string{"upstream", "downstream"} {
			f.toxiproxy(t, "POST", fmt.Sprintf("/proxies/gw%d/toxics", g.Instance),
				fmt.Sprintf(`{"name":"delay_%s","type":"latency","stream":"%s","attributes":{"latency":100,"jitter":0}}`, stream, stream))
		}
	}
	f.lossRules(t, 2)
	f.startSiteConnector(t)
	waitFor(t, "cp1 on both gateways over the faulty path", 60*time.Second, func() bool { return f.sessionsWith("cp1") })
	waitFor(t, "a tunnel RTT measured", 30*time.Second, func() bool {
		return metricValue(scrape(t, f.m.Gateways[0].AdminURL), "cmg_tunnel_rtt_seconds", "connector", "cp1") > 0
	})
	rtt := metricValue(scrape(t, f.m.Gateways[0].AdminURL), "cmg_tunnel_rtt_seconds", "connector", "cp1")
	if rtt < 0.2 {
		t.Errorf("tunnel RTT %.3fs, want at least the 200 ms toxiproxy adds", rtt)
	}

	client := deviceClient(t, f.m, true)
	upload := bytes.Repeat([]byte("cmg upload over a lossy tunnel "), 8<<10) // 248 KiB
	jobs := make(chan int)
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				base := f.m.Gateways[i%2].ClientURL
				var req *http.Request
				switch i % 4 {
				case 0, 1:
					req, _ = http.NewRequest(http.MethodGet, base+f.m.ExamplePath, nil)
				case 2:
					req, _ = http.NewRequest("CCM_POST", base+mpPrefix+"/cmg-sink", bytes.NewReader(upload))
				case 3:
					req, _ = http.NewRequest(http.MethodGet, base+mpPrefix+"/cmg-blob?size=1048576", nil)
				}
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%d %s", resp.StatusCode, resp.Header.Get("CMG-Error"))
					}
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	const n = 160
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("200 ms RTT (tunnel RTT %.3fs) and 2%% loss each way: %d requests (GETs, 248 KiB uploads, 1 MiB downloads) in %v: %d ok, %d failed",
		rtt, n, time.Since(start).Round(time.Millisecond), ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed over the faulty tunnel, want 0; first: %v", failed.Load(), failures[:min(len(failures), 5)])
	}
}

func TestPartitionFailsOverWithoutFailedRequests(t *testing.T) {
	f := newFaultNet(t)
	f.startSiteConnector(t)
	f.start("connector-cp2", "connector", "-config", f.m.Connectors[1].Config)
	waitFor(t, "both connectors on both gateways", 30*time.Second, func() bool { return f.sessionsWith("cp1", "cp2") })
	var urls []string
	for _, g := range f.m.Gateways {
		urls = append(urls, g.ClientURL+f.m.ExamplePath)
	}
	l := startLoad(t, deviceClient(t, f.m, true), urls, 8)
	defer l.stop()
	waitFor(t, "steady traffic", 10*time.Second, func() bool { return l.ok.Load() > 200 })

	// The partition: every packet between the site and the cloud dropped.
	cut := time.Now()
	const rule = "table inet cmg_partition {\n chain out { type filter hook output priority 0; policy accept; ip daddr %s drop; }\n}\n"
	f.ns.nft(t, f.ns.site, fmt.Sprintf(rule, cloudIP))
	f.ns.nft(t, f.ns.cloud, fmt.Sprintf(rule, siteIP))
	waitFor(t, "the gateways to drop cp1", 30*time.Second, func() bool { return f.sessionsWith("cp2") })
	detected := time.Since(cut)
	time.Sleep(30*time.Second - detected)
	during := l.ok.Load()
	f.ns.nft(t, f.ns.site, "delete table inet cmg_partition\n")
	f.ns.nft(t, f.ns.cloud, "delete table inet cmg_partition\n")
	healed := time.Now()
	waitFor(t, "cp1 back on both gateways", 60*time.Second, func() bool { return f.sessionsWith("cp1", "cp2") })
	back := time.Since(healed)
	before := l.ok.Load()
	waitFor(t, "traffic after the partition", 10*time.Second, func() bool { return l.ok.Load() > before+200 })
	l.stop()
	t.Logf("30 s partition of cp1: dropped by the gateways after %v, back %v after the partition ended; %d requests ok (%d by the end of the partition), %d failed",
		detected.Round(time.Millisecond), back.Round(time.Millisecond), l.ok.Load(), during, l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d idempotent requests failed around the partition, want 0; first: %v", n, l.failures)
	}
}

// uploadRecorder is the management point of TestKillGatewayLosesNoUpload: it
// records each upload it received whole, by id, and answers only then.
type uploadRecorder struct {
	mu       sync.Mutex
	complete map[int]int
	partial  atomic.Int64
}

func (u *uploadRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil {
		w.WriteHeader(http.StatusOK) // health probes
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil || n != r.ContentLength || hex.EncodeToString(h.Sum(nil)) != r.Header.Get("X-Upload-Sha256") {
		u.partial.Add(1)
		return
	}
	u.mu.Lock()
	u.complete[id]++
	u.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]int{"id": id})
}

func TestKillGatewayLosesNoUpload(t *testing.T) {
	e := newProcEnv(t)
	rec := &uploadRecorder{complete: map[int]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	var gws []*proc
	for _, g := range e.m.Gateways {
		gws = append(gws, e.start(fmt.Sprintf("gateway-%d", g.Instance), "gateway", "-config", g.Config))
	}
	for j, c := range e.m.Connectors {
		path := writeConnectorConfig(t, e.m, j, func(c *connector.Config) {
			for i := range c.Roles {
				if c.Roles[i].Kind == "management_point" {
					c.Roles[i].URL = "http://" + ln.Addr().String() + "/mp"
					c.Roles[i].HealthURL = "http://" + ln.Addr().String() + "/health"
				}
			}
		})
		e.start("connector-"+c.Name, "connector", "-config", path)
	}
	for i, g := range e.m.Gateways {
		waitFor(t, fmt.Sprintf("gateway %d to hold both connectors", i), 15*time.Second, func() bool { return e.sessions(g.AdminURL) == 2 })
	}

	client := deviceClient(t, e.m, true)
	type outcome struct {
		ok  bool
		err string
	}
	var mu sync.Mutex
	results := map[int]outcome{}
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := int(next.Add(1))
				body := bytes.Repeat([]byte(fmt.Sprintf("upload %08d ", id)), 32<<10) // 512 KiB
				sum := sha256.Sum256(body)
				req, _ := http.NewRequest("CCM_POST", fmt.Sprintf("%s%s/upload?id=%d", e.m.Gateways[id%2].ClientURL, mpPrefix, id), bytes.NewReader(body))
				req.Header.Set("X-Upload-Sha256", hex.EncodeToString(sum[:]))
				resp, err := client.Do(req)
				o := outcome{}
				if err != nil {
					o.err = err.Error()
				} else {
					var got map[string]int
					derr := json.NewDecoder(resp.Body).Decode(&got)
					resp.Body.Close()
					switch {
					case resp.StatusCode != 200:
						o.err = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("CMG-Error"))
					case derr != nil || got["id"] != id:
						o.err = fmt.Sprintf("200 with a body that is not the role's receipt (%v)", derr)
					default:
						o.ok = true
					}
				}
				mu.Lock()
				results[id] = o
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "uploads flowing", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) > 40
	})
	gws[0].kill(syscall.SIGKILL)
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	time.Sleep(time.Second) // the role finishes what is still arriving

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var ok, failed, lost, dup, ambiguous int
	for id, o := range results {
		got := rec.complete[id]
		if got > 1 {
			dup++
		}
		switch {
		case o.ok && got == 0:
			lost++
		case o.ok:
			ok++
		case got == 1:
			ambiguous++ // completed at the role, the device got an error: it retries
			failed++
		default:
			failed++
		}
	}
	t.Logf("kill -9 of gateway 0 under uploads: %d sent, %d completed and confirmed, %d failed at the device (%d of them completed at the role), %d cut at the role, %d delivered twice, %d lost silently",
		len(results), ok, failed, ambiguous, rec.partial.Load(), dup, lost)
	if lost != 0 || dup != 0 {
		t.Errorf("%d uploads confirmed to the device never completed at the role, %d were delivered twice; want 0 and 0", lost, dup)
	}
	if failed == 0 {
		t.Errorf("no upload failed: the kill did not land during uploads")
	}
	if ok < 20 {
		t.Errorf("only %d uploads completed", ok)
	}
}
