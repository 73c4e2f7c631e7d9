package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// startContent starts the simulated roles with cfg (and the site key, so the
// management point issues content tokens), both gateway instances and the
// first n connectors, and waits until each instance holds them.
func (e *procEnv) startContent(cfg roles.Config, n int) (gws, conns []*proc) {
	e.t.Helper()
	data, err := configfile.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	rolesCfg := filepath.Join(e.t.TempDir(), "roles.yaml")
	if err := os.WriteFile(rolesCfg, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.start("roles", "loadtest", "roles", "-listen", e.m.Roles.Listen, "-config", rolesCfg, "-site-key", e.m.SiteKeyFile)
	for _, g := range e.m.Gateways {
		gws = append(gws, e.start(fmt.Sprintf("gateway-%d", g.Instance), "gateway", "-config", g.Config))
	}
	for _, c := range e.m.Connectors[:n] {
		conns = append(conns, e.start("connector-"+c.Name, "connector", "-config", c.Config))
	}
	for i, g := range e.m.Gateways {
		waitFor(e.t, fmt.Sprintf("gateway %d to hold %d connectors", i, n), 15*time.Second, func() bool {
			return e.sessions(g.AdminURL) == n
		})
	}
	return gws, conns
}

func (e *procEnv) contentToken(pkg string) string {
	e.t.Helper()
	iss, err := demo.SiteIssuer(e.m)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := iss.Issue(sitetoken.Content, demo.DeviceName, sitetoken.Options{Package: pkg})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *procEnv) siteStats() roles.Stats {
	e.t.Helper()
	resp, err := http.Get("http://" + e.m.Roles.Listen + "/roles/stats")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st roles.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *procEnv) cacheDir(i int) string {
	return filepath.Join(e.m.Dir, fmt.Sprintf("content-cache-%d", i))
}

// cacheFiles lists a gateway's cache directory (without its lock file).
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.Name() != ".lock" {
			out = append(out, de.Name())
		}
	}
	return out
}

func TestContent200DevicesOneFetch(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 20 GB")
	}
	e := newProcEnv(t)
	gws, _ := e.startContent(roles.DefaultConfig(), 2)
	pkg := contentFile{"CMG00002", "1", "content.bin", 100 << 20}
	want := pkg.sha256()
	tok := e.contentToken(pkg.pkg)
	url := contentmanifest.DeviceURL(e.m.Gateways[0].ClientURL, pkg.pkg, pkg.ver, pkg.name)
	before := scrape(t, e.m.Gateways[0].AdminURL)
	rssBefore := gws[0].peakRSS()

	// Each device is a curl process (its own TLS connection), all started at
	// once against a cold cache; the test hashes what each one receives.
	const devices = 200
	var wg sync.WaitGroup
	errs := make([]error, devices)
	ttfb := make([]float64, devices)
	total := make([]float64, devices)
	start := time.Now()
	for i := 0; i < devices; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("curl", "-sS", "--http1.1", "--fail", "--cacert", e.m.CAFile, "-H", "Authorization: Bearer "+tok,
				"-w", "%{stderr}timing %{time_starttransfer} %{time_total}\n", url)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				errs[i] = err
				return
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				errs[i] = err
				return
			}
			h := sha256.New()
			n, _ := io.Copy(h, stdout)
			if err := cmd.Wait(); err != nil {
				errs[i] = fmt.Errorf("curl: %v %s", err, stderr.String())
				return
			}
			_, _ = fmt.Sscanf(stderr.String(), "timing %g %g", &ttfb[i], &total[i])
			if got := hex.EncodeToString(h.Sum(nil)); got != want || n != pkg.size {
				errs[i] = fmt.Errorf("got %d bytes with sha256 %s, want %d with %s", n, got, pkg.size, want)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("device %d: %v", i, err)
			}
		}
	}
	after := scrape(t, e.m.Gateways[0].AdminURL)
	delta := func(name string, labels ...string) float64 {
		return metricValue(after, name, labels...) - metricValue(before, name, labels...)
	}
	st := e.siteStats()
	dp := st.Roles[roles.RoleDP]
	rss := gws[0].peakRSS()
	fromConnector := delta("cmg_gateway_ingress_bytes_total", "peer", "connector", "role", "distribution_point")
	served := delta("cmg_content_served_bytes_total")
	t.Logf("%d devices (curl) x %s in %v (%.0f MB/s served): %d failed", devices, mib(pkg.size), took.Round(time.Millisecond),
		served/took.Seconds()/1e6, failed)
	t.Logf("the distribution point sent %s in %d file requests (%s on its socket); the gateway read %s from connectors for role distribution_point",
		mib(int64(dp.BodyBytesSent)), st.Kinds["dp.file"], mib(int64(dp.WireBytesSent)), mib(int64(fromConnector)))
	t.Logf("content requests: hit %v, miss %v, error %v; served %s from cache, %s from the tunnel",
		delta("cmg_content_requests_total", "result", "hit"), delta("cmg_content_requests_total", "result", "miss"),
		delta("cmg_content_requests_total", "result", "error"),
		mib(int64(delta("cmg_content_served_bytes_total", "source", "cache"))), mib(int64(delta("cmg_content_served_bytes_total", "source", "tunnel"))))
	sort.Float64s(ttfb)
	sort.Float64s(total)
	t.Logf("per device: first byte after %.2fs median, %.2fs max; whole file after %.1fs median, %.1fs max",
		ttfb[devices/2], ttfb[devices-1], total[devices/2], total[devices-1])
	t.Logf("gateway 0 peak RSS: %s after start, %s after serving %s", mib(rssBefore), mib(rss), mib(int64(served)))
	if wire := "cmg_gateway_wire_ingress_bytes_total"; after[wire] != nil {
		in := delta(wire, "listener", "tunnel")
		t.Logf("tunnel wire ingress on gateway 0: %s", mib(int64(in)))
		if in > 1.1*float64(pkg.size) {
			t.Errorf("the tunnel listener received %s, want the package once (%s)", mib(int64(in)), mib(pkg.size))
		}
	}
	if got := st.Kinds["dp.file"]; got != 1 {
		t.Errorf("the distribution point served the file %d times, want once", got)
	}
	if int64(dp.BodyBytesSent) > pkg.size+1<<20 || fromConnector > float64(pkg.size)+1<<20 {
		t.Errorf("the package crossed the tunnel more than once: the DP sent %d body bytes, the gateway read %v", dp.BodyBytesSent, fromConnector)
	}
	if served < float64(devices*pkg.size) {
		t.Errorf("served %v bytes, want at least %d", served, devices*pkg.size)
	}
	const limit = 160 << 20
	if rss > limit {
		t.Errorf("gateway peak RSS %s, want under %s: 200 downloads of 100 MiB must stream from disk, not memory", mib(rss), mib(limit))
	}
}

// curlDownload runs curl for a content URL and returns what it wrote, its
// exit error and stderr.
func (e *procEnv) curlDownload(url, tok string) ([]byte, string, error) {
	out := filepath.Join(e.t.TempDir(), "download")
	cmd := exec.Command("curl", "-sS", "--http1.1", "--fail", "--cacert", e.m.CAFile, "-H", "Authorization: Bearer "+tok, "-o", out, url)
	stderr, err := cmd.CombinedOutput()
	data, _ := os.ReadFile(out)
	return data, string(stderr), err
}

func TestContentFetchInterruptedByConnectorKill(t *testing.T) {
	f := contentFile{"CMG00040", "1", "big.cab", 40 << 20}
	cfg := roles.DefaultConfig()
	catalog(f)(&cfg)
	cfg.DP.RateBytesPerSecond = 20 << 20 // two seconds for the file: time to kill the connector mid-file
	e := newProcEnv(t)
	gws, conns := e.startContent(cfg, 1)
	tok := e.contentToken(f.pkg)
	url := contentmanifest.DeviceURL(e.m.Gateways[0].ClientURL, f.pkg, f.ver, f.name)
	dir := e.cacheDir(0)

	type result struct {
		data   []byte
		err    error
		stderr string
	}
	first := make(chan result, 1)
	go func() {
		d, s, err := e.curlDownload(url, tok)
		first <- result{d, err, s}
	}()
	waitFor(t, "the fetch to be under way", 10*time.Second, func() bool {
		return e.siteStats().Roles[roles.RoleDP].BodyBytesSent > 8<<20
	})
	conns[0].kill(syscall.SIGKILL)
	r := <-first
	if r.err == nil && sha256hex(r.data) == f.sha256() {
		t.Fatalf("the download succeeded although the only connector was killed mid-file")
	}
	t.Logf("download cut by the kill after %s: %v %s", mib(int64(len(r.data))), r.err, strings.TrimSpace(r.stderr))
	if len(r.data) >= int(f.size) {
		t.Errorf("the device got %d bytes of a file that was never verified, want fewer than %d", len(r.data), f.size)
	}
	waitFor(t, "the failed fill to be cleaned up", 10*time.Second, func() bool { return len(cacheFiles(t, dir)) == 0 })
	if got := metricValue(scrape(t, e.m.Gateways[0].AdminURL), "cmg_content_cache_bytes"); got != 0 {
		t.Errorf("cmg_content_cache_bytes = %v after the failed fill, want 0", got)
	}

	conns[0].restart()
	waitFor(t, "cp1 back", 15*time.Second, func() bool { return e.sessions(e.m.Gateways[0].AdminURL) == 1 })
	data, stderr, err := e.curlDownload(url, tok)
	if err != nil || sha256hex(data) != f.sha256() {
		t.Fatalf("download after the connector came back: %v %s, %d bytes", err, stderr, len(data))
	}
	files := cacheFiles(t, dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], "-"+f.sha256()) {
		t.Errorf("cache directory holds %v, want the one verified file", files)
	}
	fetched := e.siteStats().Kinds["dp.file"]

	// The cache survives a gateway restart.
	gws[0].kill(syscall.SIGTERM)
	gws[0].restart()
	waitFor(t, "gateway 0 back with cp1", 15*time.Second, func() bool { return e.sessions(e.m.Gateways[0].AdminURL) == 1 })
	data, stderr, err = e.curlDownload(url, tok)
	if err != nil || sha256hex(data) != f.sha256() {
		t.Fatalf("download after the gateway restarted: %v %s", err, stderr)
	}
	if got := e.siteStats().Kinds["dp.file"]; got != fetched {
		t.Errorf("after the restart the file was fetched again (%d file requests, want %d): the cache did not survive", got, fetched)
	}
}

func TestContentFetchResumesOnAnotherConnector(t *testing.T) {
	f := contentFile{"CMG00041", "1", "big.cab", 40 << 20}
	cfg := roles.DefaultConfig()
	catalog(f)(&cfg)
	cfg.DP.RateBytesPerSecond = 20 << 20
	e := newProcEnv(t)
	_, conns := e.startContent(cfg, 2)
	tok := e.contentToken(f.pkg)
	url := contentmanifest.DeviceURL(e.m.Gateways[0].ClientURL, f.pkg, f.ver, f.name)
	type result struct {
		data   []byte
		err    error
		stderr string
	}
	first := make(chan result, 1)
	go func() {
		d, s, err := e.curlDownload(url, tok)
		first <- result{d, err, s}
	}()
	waitFor(t, "the fetch to be under way", 10*time.Second, func() bool {
		return e.siteStats().Roles[roles.RoleDP].BodyBytesSent > 8<<20
	})
	// Kill the connector carrying the fetch.
	var carrier string
	var st struct {
		Connectors []struct {
			Name    string `json:"name"`
			Streams int    `json:"streams"`
		} `json:"connectors"`
	}
	getJSON(t, e.m.Gateways[0].AdminURL+"/api/v1/status", &st)
	for _, c := range st.Connectors {
		if c.Streams > 0 {
			carrier = c.Name
		}
	}
	for i, c := range e.m.Connectors {
		if c.Name == carrier {
			conns[i].kill(syscall.SIGKILL)
		}
	}
	if carrier == "" {
		t.Fatal("no connector carries the fetch")
	}
	r := <-first
	if r.err != nil || sha256hex(r.data) != f.sha256() {
		t.Fatalf("download across the kill of %s: %v %s, %d bytes", carrier, r.err, r.stderr, len(r.data))
	}
	dp := e.siteStats()
	t.Logf("killed %s mid-file; the fill resumed on the other connector: %d file requests, %s sent by the DP for a %s file",
		carrier, dp.Kinds["dp.file"], mib(int64(dp.Roles[roles.RoleDP].BodyBytesSent)), mib(f.size))
	if got := dp.Kinds["dp.file"]; got != 2 {
		t.Errorf("%d file requests, want 2 (the first, and the resumed range)", got)
	}
}
