package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/notifyclient"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// The notification channel at scale, against the built binary: the gateways and
// connectors run as processes, and the devices run in testdata/notifyswarm, a
// program built here without the race detector (the test binary may run under
// -race, which would distort every timing) that holds the devices' channels
// (loadtest/notifyclient) and answers the test over HTTP.

// buildTestProgram builds ./testdata/<name> and returns the binary.
func buildTestProgram(t testing.TB, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	return out
}

// patchGateways rewrites the demo's gateway configuration files.
func (e *procEnv) patchGateways(f func(i int, c *gateway.Config)) {
	e.t.Helper()
	for i, g := range e.m.Gateways {
		cfg := gateway.DefaultConfig()
		if err := configfile.Load(g.Config, &cfg); err != nil {
			e.t.Fatal(err)
		}
		f(i, &cfg)
		data, err := configfile.Marshal(cfg)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(g.Config, data, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

// withSiteTokens lets the gateways take site tokens signed by a fresh key.
func (e *procEnv) withSiteTokens() *sitetoken.Issuer {
	pub, iss := siteKey(e.t)
	e.patchGateways(func(_ int, c *gateway.Config) {
		c.Auth.Tokens.Site.Keys = []auth.SiteKeyConfig{{Site: demo.SiteCode, File: pub}}
	})
	return iss
}

// sourceIP spreads devices over 127.0.0.0/8, so that one address's ephemeral
// ports do not run out.
func sourceIP(i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 20+i/62500, (i/250)%250+1, i%250+1)
}

func devName(i int) string { return fmt.Sprintf("dev-%05d", i) }

// swarmConfig and swarmDevice are testdata/notifyswarm's input.
type swarmConfig struct {
	CAFile        string        `json:"ca_file"`
	Devices       []swarmDevice `json:"devices"`
	RampPerSecond int           `json:"ramp_per_second,omitempty"`
	MinBackoffMS  int           `json:"min_backoff_ms,omitempty"`
	MaxBackoffMS  int           `json:"max_backoff_ms,omitempty"`
}

type swarmDevice struct {
	Token string   `json:"token"`
	URLs  []string `json:"urls"`
	IP    string   `json:"ip"`
}

type swarmStats struct {
	Devices, Connected                int
	Connects, Failures, Drops, Events int64
}

type swarmTally struct {
	Count   int   `json:"count"`
	FirstNS int64 `json:"first_ns"`
	LastNS  int64 `json:"last_ns"`
	Devices []int `json:"devices"`
}

// swarm is a running notifyswarm.
type swarm struct {
	t    testing.TB
	addr string
	cmd  *exec.Cmd
}

func startSwarm(t testing.TB, bin string, cfg swarmConfig) *swarm {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile, addrFile, logFile := filepath.Join(dir, "swarm.json"), filepath.Join(dir, "addr"), filepath.Join(dir, "swarm.log")
	if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-addr-file", addrFile)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &swarm{t: t, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		lf.Close()
		if t.Failed() {
			printTail(t, "notifyswarm", logFile, 20)
		}
	})
	waitFor(t, "the swarm's address", 30*time.Second, func() bool {
		b, err := os.ReadFile(addrFile)
		s.addr = string(b)
		return err == nil
	})
	return s
}

func (s *swarm) get(path string, v any) {
	s.t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		s.t.Fatalf("swarm %s: %v", path, err)
	}
}

func (s *swarm) stats() (st swarmStats) { s.get("/stats", &st); return st }

func (s *swarm) tally(data string) (t swarmTally) {
	s.get("/tally?data="+urlQueryEscape(data), &t)
	return t
}

func (s *swarm) received() (r [][]string) { s.get("/received", &r); return r }

func (s *swarm) devices() (d []notifyclient.Stats) { s.get("/devices", &d); return d }

// waitConnected waits until exactly n devices hold a channel; on timeout it
// says what the others last failed with.
func (s *swarm) waitConnected(n int, limit time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := s.stats()
		if st.Connected == n {
			return
		}
		if time.Now().After(deadline) {
			errs := map[string]int{}
			for _, d := range s.devices() {
				if !d.Connected && d.LastError != "" {
					// Drop the addresses, keep the kind of failure.
					msg := d.LastError
					if i := strings.LastIndex(msg, ": "); i >= 0 {
						msg = msg[i+2:]
					}
					errs[msg]++
				}
			}
			s.t.Fatalf("%d of %d devices connected after %v (want %d); last errors of the others: %v", st.Connected, st.Devices, limit, n, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop kills the swarm: every device's socket closes at once.
func (s *swarm) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

// TestNotificationBroadcastTenThousandDevices: 10,000 devices hold channels
// across two gateway instances; a broadcast reaches all of them within 2 s; a
// unicast reaches exactly its device and no other.
func TestNotificationBroadcastTenThousandDevices(t *testing.T) {
	const n = 10000
	e := newProcEnv(t)
	iss := e.withSiteTokens()
	e.startAll()
	bin := buildTestProgram(t, "notifyswarm")
	devs := make([]swarmDevice, n)
	for i := range devs {
		devs[i] = swarmDevice{Token: deviceToken(t, iss, devName(i)), URLs: []string{e.m.Gateways[i%2].ClientURL}, IP: sourceIP(i)}
	}
	sw := startSwarm(t, bin, swarmConfig{CAFile: e.m.CAFile, Devices: devs, RampPerSecond: 1500})
	start := time.Now()
	sw.waitConnected(n, 2*time.Minute)
	t.Logf("10,000 channels open %v after the swarm started (%d failed attempts retried)",
		time.Since(start).Round(time.Millisecond), sw.stats().Failures)
	for _, g := range e.m.Gateways {
		waitChannels(t, g.AdminURL, n/2, 10*time.Second)
	}

	cp1, cp2 := e.m.Connectors[0].AdminURL, e.m.Connectors[1].AdminURL
	t0 := time.Now()
	res := mustNotify(t, cp1, `{"all":true,"event":"policy","data":{"n":"b1"}}`)
	waitFor(t, "the broadcast at every device", 30*time.Second, func() bool { return sw.tally(`{"n":"b1"}`).Count == n })
	tl := sw.tally(`{"n":"b1"}`)
	took := time.Unix(0, tl.LastNS).Sub(t0)
	t.Logf("broadcast: first device %v, all 10,000 %v after the POST", time.Unix(0, tl.FirstNS).Sub(t0).Round(time.Millisecond), took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the broadcast took %v to reach all 10,000 devices, want at most 2s", took)
	}
	if res.Delivered != n || res.Instances[0].Delivered != n/2 || res.Instances[1].Delivered != n/2 {
		t.Errorf("broadcast report %+v: want 5,000 delivered by each instance", res)
	}

	const target = 4242
	u := mustNotify(t, cp2, fmt.Sprintf(`{"device":"%s","data":{"n":"u1"}}`, devName(target)))
	// Each channel writes its events in order, so once every device has the
	// next broadcast, a stray unicast would have arrived.
	mustNotify(t, cp2, `{"all":true,"data":{"n":"b2"}}`)
	waitFor(t, "the second broadcast at every device", 30*time.Second, func() bool { return sw.tally(`{"n":"b2"}`).Count == n })
	if tu := sw.tally(`{"n":"u1"}`); tu.Count != 1 || !slices.Equal(tu.Devices, []int{target}) {
		t.Errorf("the unicast reached %d devices %v, want exactly device %d", tu.Count, tu.Devices, target)
	}
	if u.Delivered != 1 || u.Instances[0].Delivered != 1 || u.Instances[1].NotConnected != 1 || len(u.NotConnected) != 0 {
		t.Errorf("unicast report %+v: want delivered by instance 0 only", u)
	}
	for i, got := range sw.received() {
		want := []string{`{"n":"b1"}`, `{"n":"b2"}`}
		if i == target {
			want = []string{`{"n":"b1"}`, `{"n":"u1"}`, `{"n":"b2"}`}
		}
		if !slices.Equal(got, want) {
			t.Errorf("device %d got %v, want %v", i, got, want)
			break
		}
	}
	fams := scrape(t, e.m.Gateways[0].AdminURL)
	if v := metricValue(fams, "cmg_gateway_notifications_total", "result", "delivered"); v != n/2*2+1 {
		t.Errorf("instance 0 delivered %v events, want %d", v, n/2*2+1)
	}
}

// TestNotificationChannelsSurviveGatewayRestart: 5,000 devices hold channels on
// instance 0, which restarts. Half know only instance 0 and wait for it, half
// fail over to instance 1; all reconnect with backoff. Whatever was sent while a
// device was away reaches it through Last-Event-ID (from both connectors); what
// is sent after it is back reaches it live; nothing twice.
func TestNotificationChannelsSurviveGatewayRestart(t *testing.T) {
	const n = 5000
	e := newProcEnv(t)
	iss := e.withSiteTokens()
	gws, _ := e.startAll()
	bin := buildTestProgram(t, "notifyswarm")
	gw0, gw1 := e.m.Gateways[0], e.m.Gateways[1]
	devs := make([]swarmDevice, n)
	for i := range devs {
		urls := []string{gw0.ClientURL}
		if i%2 == 1 {
			urls = append(urls, gw1.ClientURL)
		}
		devs[i] = swarmDevice{Token: deviceToken(t, iss, devName(i)), URLs: urls, IP: sourceIP(i)}
	}
	sw := startSwarm(t, bin, swarmConfig{CAFile: e.m.CAFile, Devices: devs, RampPerSecond: 1500, MinBackoffMS: 100, MaxBackoffMS: 2000})
	sw.waitConnected(n, 2*time.Minute)
	// Under load an odd device may already have failed over to instance 1.
	waitFor(t, "5,000 channels on the two instances", 10*time.Second, func() bool {
		return metricValue(scrape(t, gw0.AdminURL), "cmg_gateway_notification_channels")+
			metricValue(scrape(t, gw1.AdminURL), "cmg_gateway_notification_channels") == n
	})
	cp1, cp2 := e.m.Connectors[0].AdminURL, e.m.Connectors[1].AdminURL
	mustNotify(t, cp1, `{"all":true,"data":"A"}`)
	waitFor(t, "A everywhere", 30*time.Second, func() bool { return sw.tally(`"A"`).Count == n })
	before := sw.devices()

	gws[0].kill(syscall.SIGTERM)
	down := time.Now()
	sw.waitConnected(n/2, 30*time.Second)
	list := func(from, to, step int) string {
		var names []string
		for i := from; i < to; i += step {
			names = append(names, `"`+devName(i)+`"`)
		}
		return "[" + strings.Join(names, ",") + "]"
	}
	mustNotify(t, cp1, `{"all":true,"data":"B"}`)
	mustNotify(t, cp1, `{"devices":`+list(0, 200, 2)+`,"data":"U1"}`)
	mustNotify(t, cp2, `{"devices":`+list(1000, 1100, 1)+`,"event":"x","data":"U2"}`)
	time.Sleep(time.Second) // instance 0 stays down a while
	gws[0].restart()
	restarted := time.Now()
	sw.waitConnected(n, time.Minute)
	t.Logf("instance 0 down %v; every device back %v after its restart", restarted.Sub(down).Round(time.Millisecond),
		time.Since(restarted).Round(time.Millisecond))
	mustNotify(t, cp2, `{"all":true,"data":"C"}`)
	mustNotify(t, cp1, `{"devices":["`+devName(1)+`","`+devName(2)+`"],"data":"U3"}`)

	want := make([][]string, n)
	total := 0
	for i := range want {
		w := []string{`"A"`, `"B"`, `"C"`}
		if i%2 == 0 && i < 200 {
			w = append(w, `"U1"`)
		}
		if i >= 1000 && i < 1100 {
			w = append(w, `"U2"`)
		}
		if i == 1 || i == 2 {
			w = append(w, `"U3"`)
		}
		slices.Sort(w)
		want[i] = w
		total += len(w)
	}
	waitFor(t, "every event at its devices", time.Minute, func() bool { return sw.stats().Events >= int64(total) })
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive now
	bad := 0
	for i, got := range sw.received() {
		slices.Sort(got)
		if !slices.Equal(got, want[i]) {
			if bad++; bad <= 5 {
				t.Errorf("device %d got %v, want each of %v once", i, got, want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d devices got the wrong events", bad, n)
	}
	// Backoff: the devices that waited for instance 0 retried a few times
	// each, not in a tight loop.
	after := sw.devices()
	var waited, retries int64
	for i := 0; i < n; i += 2 {
		waited++
		retries += after[i].Failures - before[i].Failures
	}
	avg := float64(retries) / float64(waited)
	t.Logf("devices waiting for instance 0 retried %.1f times each on average", avg)
	if avg < 1 || avg > 20 {
		t.Errorf("average retries %.1f per waiting device: want a few (backoff), not none and not a tight loop", avg)
	}
	fams := scrape(t, gw0.AdminURL)
	if v := metricValue(fams, "cmg_gateway_notifications_total", "result", "replayed"); v == 0 {
		t.Error("instance 0 replayed nothing after its restart")
	}
}
