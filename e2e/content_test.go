package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/contentclient"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// contentFile is a file of the simulated distribution point's catalog.
type contentFile struct {
	pkg, ver, name string
	size           int64
}

func (f contentFile) bytes() []byte {
	b, _ := io.ReadAll(roles.ContentReader(roles.DefaultConfig().Seed, f.pkg, f.ver, f.name, f.size))
	return b
}

func (f contentFile) sha256() string {
	h := sha256.New()
	_, _ = roles.ContentReader(roles.DefaultConfig().Seed, f.pkg, f.ver, f.name, f.size).WriteTo(h)
	return hex.EncodeToString(h.Sum(nil))
}

func (f contentFile) url(e *env, instance int) string {
	return contentmanifest.DeviceURL(e.m.Gateways[instance].ClientURL, f.pkg, f.ver, f.name)
}

// catalog gives the roles a distribution point with these files.
func catalog(files ...contentFile) func(*roles.Config) {
	return func(c *roles.Config) {
		c.DP = roles.DPConfig{}
		idx := map[string]int{}
		for _, f := range files {
			k := f.pkg + "/" + f.ver
			i, ok := idx[k]
			if !ok {
				i = len(c.DP.Packages)
				idx[k] = i
				c.DP.Packages = append(c.DP.Packages, roles.PackageConfig{ID: f.pkg, Version: f.ver})
			}
			c.DP.Packages[i].Files = append(c.DP.Packages[i].Files, roles.DPFileConfig{Name: f.name, Size: configfile.Size(f.size)})
		}
	}
}

// contentToken asks the simulated management point, through the gateway with
// the demo device's certificate, for a content token for pkg.
func (e *env) contentToken(pkg string) string {
	e.t.Helper()
	res := e.curl(true, e.m.Gateways[0].ClientURL+mpPrefix+"/cmg-content-token?package="+pkg)
	if res.status != http.StatusOK {
		e.t.Fatalf("content token: status %d %s", res.status, res.stderr)
	}
	var reply roles.ContentTokenReply
	if err := json.Unmarshal(res.body, &reply); err != nil {
		e.t.Fatal(err)
	}
	return reply.Token
}

// siteStats reads the simulated roles' counters.
func (e *env) siteStats() roles.Stats {
	e.t.Helper()
	var st roles.Stats
	getJSON(e.t, "http://"+e.m.Roles.Listen+"/roles/stats", &st)
	return st
}

func bearer(tok string) []string { return []string{"-H", "Authorization: Bearer " + tok} }

func TestContentThroughTheCache(t *testing.T) {
	setup := contentFile{"CMG00001", "1", "setup.exe", 1 << 20}
	cab := contentFile{"CMG00001", "1", "data/payload.cab", 3 << 20}
	e := newEnv(t, envOptions{roles: catalog(setup, cab)})
	tok := e.contentToken("CMG00001")
	want := setup.bytes()
	wantTag := `"` + setup.sha256() + `"`

	// First download crosses the tunnel, the second comes from the cache.
	for i, wantResult := range []string{"miss", "hit"} {
		res := e.curl(false, setup.url(e, 0), bearer(tok)...)
		if res.status != http.StatusOK || !bytes.Equal(res.body, want) {
			t.Fatalf("download %d: status %d, %d bytes (%s); want 200 and the file's %d bytes", i, res.status, len(res.body), res.stderr, len(want))
		}
		if got := res.header.Get("ETag"); got != wantTag {
			t.Errorf("download %d: ETag %s, want %s", i, got, wantTag)
		}
		fams := scrape(t, e.gws[0].admin)
		if got := metricValue(fams, "cmg_content_requests_total", "result", wantResult); got != 1 {
			t.Errorf("after download %d: cmg_content_requests_total{result=%q} = %v, want 1", i, wantResult, got)
		}
	}
	fams := scrape(t, e.gws[0].admin)
	if got := metricValue(fams, "cmg_content_served_bytes_total", "source", "cache"); got != float64(len(want)) {
		t.Errorf("served from cache: %v bytes, want %d", got, len(want))
	}
	if got := metricValue(fams, "cmg_content_served_bytes_total", "source", "tunnel"); got != float64(len(want)) {
		t.Errorf("served from the tunnel: %v bytes, want %d", got, len(want))
	}
	if got := metricValue(fams, "cmg_content_cache_bytes"); got < float64(len(want)) || got > float64(len(want))+8192 {
		t.Errorf("cmg_content_cache_bytes = %v, want the file's %d bytes in whole blocks", got, len(want))
	}
	if got := metricValue(fams, "cmg_gateway_egress_bytes_total", "peer", "client", "role", "distribution_point"); got < float64(2*len(want)) {
		t.Errorf("egress to devices for role distribution_point = %v, want at least %d (cost model)", got, 2*len(want))
	}
	if got := metricValue(fams, "cmg_gateway_ingress_bytes_total", "peer", "connector", "role", "distribution_point"); got < float64(len(want)) || got > float64(len(want))+16<<10 {
		t.Errorf("ingress from connectors for role distribution_point = %v, want the file once (%d) plus headers", got, len(want))
	}
	st := e.siteStats()
	if got := st.Kinds["dp.file"]; got != 1 {
		t.Errorf("the distribution point served the file %d times, want once", got)
	}

	cases := []struct {
		name   string
		args   []string
		status int
		body   []byte
		check  func(t *testing.T, res curlResult)
	}{
		{"HEAD", []string{"-I"}, http.StatusOK, nil, func(t *testing.T, res curlResult) {
			if res.header.Get("Content-Length") != "1048576" || res.header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("HEAD headers %v", res.header)
			}
		}},
		{"If-None-Match", []string{"-H", "If-None-Match: " + wantTag}, http.StatusNotModified, nil, nil},
		{"If-None-Match weak", []string{"-H", "If-None-Match: W/" + wantTag}, http.StatusNotModified, nil, nil},
		{"If-None-Match other", []string{"-H", `If-None-Match: "x"`}, http.StatusOK, want, nil},
		{"Range", []string{"-r", "1000-1999"}, http.StatusPartialContent, want[1000:2000], func(t *testing.T, res curlResult) {
			if got := res.header.Get("Content-Range"); got != "bytes 1000-1999/1048576" {
				t.Errorf("Content-Range %q", got)
			}
		}},
		{"If-Range matching", []string{"-r", "10-19", "-H", "If-Range: " + wantTag}, http.StatusPartialContent, want[10:20], nil},
		{"If-Range stale", []string{"-r", "10-19", "-H", `If-Range: "old"`}, http.StatusOK, want, nil},
		{"multiple ranges get the file", []string{"-r", "0-9,20-29"}, http.StatusOK, want, nil},
		{"range past the end", []string{"-r", "2000000-"}, http.StatusRequestedRangeNotSatisfiable, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.curl(false, setup.url(e, 0), append(bearer(tok), tc.args...)...)
			if res.status != tc.status {
				t.Fatalf("status %d (%s), want %d", res.status, res.stderr, tc.status)
			}
			if tc.body != nil && !bytes.Equal(res.body, tc.body) {
				t.Errorf("%d bytes, want %d identical ones", len(res.body), len(tc.body))
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}

	// A range as the first request for an uncached file: the fetch starts and
	// the range is served from it; HEAD and If-None-Match of an uncached file
	// are answered from the manifest without fetching the file.
	cabBytes := cab.bytes()
	for i, want := range []string{"miss", "hit"} { // the manifest: fetched, then in memory
		head := e.curl(false, cab.url(e, 1), append(bearer(tok), "-I")...)
		if head.status != http.StatusOK || head.header.Get("Content-Length") != "3145728" || head.header.Get("ETag") != `"`+cab.sha256()+`"` {
			t.Fatalf("HEAD of an uncached file: %d %v", head.status, head.header)
		}
		if got := metricValue(scrape(t, e.gws[1].admin), "cmg_content_requests_total", "result", want); got != 1 {
			t.Errorf("HEAD %d of an uncached file: cmg_content_requests_total{result=%q} = %v, want 1", i, want, got)
		}
	}
	if got := e.siteStats().Kinds["dp.file"]; got != 1 {
		t.Errorf("HEAD fetched the file (%d file requests, want still 1)", got)
	}
	part := e.curl(false, cab.url(e, 1), append(bearer(tok), "-r", "2000000-2000099")...)
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, cabBytes[2000000:2000100]) {
		t.Fatalf("first request a range: %d, %d bytes (%s)", part.status, len(part.body), part.stderr)
	}
}

func TestContentRefusals(t *testing.T) {
	e := newEnv(t, envOptions{gateway: func(i int, c *gateway.Config) {
		if i == 1 {
			c.Content.ServeContent = false
		}
	}})
	setup := contentFile{"CMG00001", "1", "setup.exe", 1 << 20}
	iss, err := demo.SiteIssuer(e.m)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(kind sitetoken.Kind, pkg string, now time.Time, ttl time.Duration) string {
		tok, err := iss.Issue(kind, demo.DeviceName, sitetoken.Options{Package: pkg, Now: now, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	forger, _ := sitetoken.GenerateKey()
	forgedIss, _ := sitetoken.NewIssuer(forger, iss.KeyID(), e.m.SiteCode) // same kid, another key
	forged, _ := forgedIss.Issue(sitetoken.Content, demo.DeviceName, sitetoken.Options{Package: "CMG00001"})
	good := issue(sitetoken.Content, "CMG00001", time.Time{}, 0)
	base := e.m.Gateways[0].ClientURL + contentmanifest.DevicePrefix
	tests := []struct {
		name   string
		url    string
		args   []string
		cert   bool
		status int
		reason string
	}{
		{"expired token", setup.url(e, 0), bearer(issue(sitetoken.Content, "CMG00001", time.Now().Add(-48*time.Hour), 0)), false, 401, "InvalidToken"},
		{"forged token", setup.url(e, 0), bearer(forged), false, 401, "InvalidToken"},
		{"device token", setup.url(e, 0), bearer(issue(sitetoken.Device, "", time.Time{}, 0)), false, 401, "InvalidToken"},
		{"no token, even with a client certificate", setup.url(e, 0), nil, true, 401, "InvalidToken"},
		{"token for another package", setup.url(e, 0), bearer(issue(sitetoken.Content, "CMG00002", time.Time{}, 0)), false, 403, "PolicyDenied"},
		{"unknown file", base + "CMG00001/1/nothing.exe", bearer(good), false, 404, "RouteNotFound"},
		{"unknown version", base + "CMG00001/7/setup.exe", bearer(good), false, 404, "RouteNotFound"},
		{"too short a path", base + "CMG00001/1", bearer(good), false, 404, "RouteNotFound"},
		{"hidden file", base + "CMG00001/1/.manifest.json", bearer(good), false, 400, "BadRequest"},
		{"dot segment", base + "CMG00001/1/a/../setup.exe", append(bearer(good), "--path-as-is"), false, 400, "BadRequest"},
		{"POST", setup.url(e, 0), append(bearer(good), "-X", "POST", "-d", "x"), false, 405, "MethodNotAllowed"},
		{"the DP's prefix is not for devices", e.m.Gateways[0].ClientURL + "/CCM_Proxy_ServerAuth/" + demo.DPRoleID + "/CMG00001/1/setup.exe",
			bearer(issue(sitetoken.Device, "", time.Time{}, 0)), true, 404, "RouteNotFound"},
		{"serve_content off", setup.url(e, 1), bearer(good), false, 404, "RouteNotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.curl(tc.cert, tc.url, tc.args...)
			if res.status != tc.status || res.header.Get("CMG-Error") != tc.reason {
				t.Fatalf("got %d %q (%s), want %d %s", res.status, res.header.Get("CMG-Error"), res.stderr, tc.status, tc.reason)
			}
			var body map[string]string
			if err := json.Unmarshal(res.body, &body); err != nil || body["error"] != tc.reason {
				t.Errorf("body %s, want the JSON error", res.body)
			}
		})
	}
	fams := scrape(t, e.gws[0].admin)
	if got := metricValue(fams, "cmg_content_requests_total", "result", "error"); got < 10 {
		t.Errorf("cmg_content_requests_total{result=error} = %v, want every refusal counted", got)
	}
	if got := e.siteStats().Kinds["dp.file"]; got != 0 {
		t.Errorf("refused requests reached the distribution point %d times", got)
	}
}

// cacheDiskUse is what a gateway's cache directory takes on disk: allocated
// blocks and apparent sizes.
func cacheDiskUse(t *testing.T, dir string) (blocks, apparent int64) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		fi, err := os.Stat(filepath.Join(dir, de.Name()))
		if err != nil {
			continue
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			blocks += st.Blocks * 512
		}
	}
	return blocks, apparent
}

func TestContentCacheBoundAndEviction(t *testing.T) {
	const mib = 1 << 20
	files := map[string]contentFile{}
	var list []contentFile
	for _, n := range []string{"a", "b", "c", "d"} {
		f := contentFile{"CMG00010", "1", n + ".bin", 2 * mib}
		files[n] = f
		list = append(list, f)
	}
	big := contentFile{"CMG00010", "1", "big.bin", 9 * mib}
	list = append(list, big)
	const bound = 7 * mib // three 2 MiB files fit, not four; big never fits
	var cacheDir string
	e := newEnv(t, envOptions{
		roles: catalog(list...),
		gateway: func(i int, c *gateway.Config) {
			c.Content.Cache.MaxBytes = bound
			if i == 0 {
				cacheDir = c.Content.Cache.Dir
			}
		},
	})
	tok := e.contentToken("CMG00010")
	fetches := func() uint64 { return e.siteStats().Kinds["dp.file"] }
	get := func(f contentFile) {
		t.Helper()
		res := e.curl(false, f.url(e, 0), bearer(tok)...)
		if res.status != http.StatusOK || len(res.body) != int(f.size) || sha256hex(res.body) != f.sha256() {
			t.Fatalf("%s: status %d, %d bytes (%s)", f.name, res.status, len(res.body), res.stderr)
		}
		if blocks, apparent := cacheDiskUse(t, cacheDir); blocks > bound || apparent > bound {
			t.Fatalf("after %s the cache takes %d bytes on disk (%d apparent), over its bound %d", f.name, blocks, apparent, bound)
		}
	}
	for _, n := range []string{"a", "b", "c", "a", "d"} { // a is used again, so b is the least recently used when d comes
		get(files[n])
	}
	before := fetches()
	get(files["a"]) // still cached
	get(files["c"])
	get(files["d"])
	if got := fetches() - before; got != 0 {
		t.Errorf("a, c and d were fetched %d times again, want 0 (they are cached)", got)
	}
	get(files["b"]) // evicted: fetched again
	if got := fetches() - before; got != 1 {
		t.Errorf("b (the least recently used) fetched %d times, want 1 (it was evicted)", got)
	}

	// Larger than the cache: streamed through, verified, never stored.
	before = fetches()
	get(big)
	get(big)
	if got := fetches() - before; got != 2 {
		t.Errorf("a file larger than the cache crossed the tunnel %d times for 2 downloads, want 2", got)
	}
	part := e.curl(false, big.url(e, 0), append(bearer(tok), "-r", "5000000-5000009")...)
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, big.bytes()[5000000:5000010]) {
		t.Errorf("range of a streamed-through file: %d, %d bytes", part.status, len(part.body))
	}
	fams := scrape(t, e.gws[0].admin)
	if got := metricValue(fams, "cmg_content_cache_bytes"); got > bound {
		t.Errorf("cmg_content_cache_bytes = %v, over the bound %d", got, bound)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestContentHashMismatchIsNeverServedWhole(t *testing.T) {
	lie := contentFile{"CMG00020", "1", "lie.bin", 2 << 20}
	tiny := contentFile{"CMG00020", "1", "tiny.bin", 1}
	var cacheDir string
	e := newEnv(t, envOptions{
		roles: func(c *roles.Config) {
			bad := hex.EncodeToString(make([]byte, 32))
			c.DP = roles.DPConfig{Packages: []roles.PackageConfig{{ID: "CMG00020", Version: "1", Files: []roles.DPFileConfig{
				{Name: lie.name, Size: configfile.Size(lie.size), PublishSHA256: bad},
				{Name: tiny.name, Size: 1, PublishSHA256: bad},
			}}}}
		},
		gateway: func(i int, c *gateway.Config) {
			if i == 0 {
				cacheDir = c.Content.Cache.Dir
			}
		},
	})
	tok := e.contentToken("CMG00020")
	// The whole file arrives but its hash is wrong: the response is cut
	// before its last byte.
	res := e.curl(false, lie.url(e, 0), bearer(tok)...)
	if res.status == http.StatusOK && len(res.body) == int(lie.size) {
		t.Fatalf("a file whose hash does not match was served whole")
	}
	if len(res.body) >= int(lie.size) || res.stderr == "" {
		t.Errorf("got %d of %d bytes and curl said %q; want a cut response", len(res.body), lie.size, res.stderr)
	}
	// A one-byte file: its only byte is held back, so the device gets an
	// error status before any byte.
	res = e.curl(false, tiny.url(e, 0), bearer(tok)...)
	if res.status != http.StatusBadGateway || res.header.Get("CMG-Error") != "BackendUnavailable" {
		t.Errorf("tiny file with a wrong hash: %d %q, want 502 BackendUnavailable", res.status, res.header.Get("CMG-Error"))
	}
	if blocks, apparent := cacheDiskUse(t, cacheDir); apparent != 0 {
		t.Errorf("the cache kept %d bytes (%d on disk) of files that failed verification", apparent, blocks)
	}
	if got := metricValue(scrape(t, e.gws[0].admin), "cmg_content_requests_total", "result", "error"); got != 2 {
		t.Errorf("cmg_content_requests_total{result=error} = %v, want 2", got)
	}
}

// flakyTransport cuts each device connection after a random number of bytes,
// as a mobile network does.
func flakyTransport(t *testing.T, e *env, maxBytes int) (*http.Transport, *atomic.Int32) {
	base := deviceClient(t, e.m, false).Transport.(*http.Transport).Clone()
	cuts := &atomic.Int32{}
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: c, left: 64<<10 + rand.IntN(maxBytes), cuts: cuts}, nil
	}
	t.Cleanup(base.CloseIdleConnections)
	return base, cuts
}

type cutConn struct {
	net.Conn
	left int
	cuts *atomic.Int32
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.cuts.Add(1)
		c.Conn.Close()
		return 0, errors.New("connection cut by the test")
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

func TestContentRangesInterruptedAndResumed(t *testing.T) {
	f := contentFile{"CMG00030", "1", "package.cab", 12 << 20}
	e := newEnv(t, envOptions{roles: func(c *roles.Config) {
		catalog(f)(c)
		c.DP.RateBytesPerSecond = 24 << 20 // the fetch takes about half a second: devices join it mid-file
	}})
	tok := e.contentToken("CMG00030")
	want := f.sha256()
	const devices = 8
	var wg sync.WaitGroup
	errs := make([]error, devices)
	jobs := make([]*contentclient.Job, devices)
	var totalCuts atomic.Int32
	for i := 0; i < devices; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, cuts := flakyTransport(t, e, 3<<20)
			c := &contentclient.Client{HTTP: &http.Client{Transport: tr}, RetryDelay: 10 * time.Millisecond, MaxFailures: 50}
			j := &contentclient.Job{URL: f.url(e, i%2), Token: tok}
			jobs[i] = j
			h := sha256.New()
			// Interrupted by the device itself half way (it went to sleep),
			// then resumed from where it stopped.
			ctx, cancel := context.WithCancel(context.Background())
			var stopAt = int64(rand.IntN(int(f.size)))
			w := writeFunc(func(p []byte) (int, error) {
				if j.Done > stopAt {
					cancel()
				}
				return h.Write(p)
			})
			err := c.Download(ctx, j, w)
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				errs[i] = err
				return
			}
			if err = c.Download(context.Background(), j, h); err != nil {
				errs[i] = err
				return
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				errs[i] = errors.New("reassembled file has sha256 " + got + ", want " + want)
			}
			totalCuts.Add(cuts.Load())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("device %d: %v", i, err)
		}
	}
	requests, failures := 0, 0
	for _, j := range jobs {
		requests += j.Requests
		failures += j.Failures
	}
	t.Logf("%d devices: %d ranged requests of 1 MiB, %d interrupted (%d connections cut)", devices, requests, failures, totalCuts.Load())
	if totalCuts.Load() == 0 || failures == 0 {
		t.Errorf("no download was interrupted (cuts %d, failures %d): the test proves nothing", totalCuts.Load(), failures)
	}
	// Each instance fetched the file once, however many devices and ranges.
	if got := e.siteStats().Kinds["dp.file"]; got != 2 {
		t.Errorf("the distribution point served the file %d times, want once per instance (2)", got)
	}
}

type writeFunc func([]byte) (int, error)

func (f writeFunc) Write(p []byte) (int, error) { return f(p) }
