package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"

	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// Timing and memory behaviour is checked against the built binary running as
// separate processes (never under the race detector), with margins that hold on
// a busy two-core machine.

func TestLargeTransfersKeepMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1.2 GB")
	}
	e := newProcEnv(t)
	gws, conns := e.startAll()
	base := e.m.Gateways[0].ClientURL + mpPrefix

	const downSize = 1 << 30
	const seed = 7
	want := sha256.New()
	if _, err := io.Copy(want, roles.NewBlobReader(seed, downSize)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("curl", "-sS", "--http1.1", "--fail", "--cacert", e.m.CAFile, "--cert", e.m.ClientCertFile, "--key", e.m.ClientKeyFile,
		fmt.Sprintf("%s/cmg-blob?size=%d&seed=%d", base, downSize, seed))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, _ := io.Copy(got, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("curl download: %v", err)
	}
	if n != downSize || hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("downloaded %d bytes with a different hash, want %d identical bytes", n, downSize)
	}

	const upSize = 200 << 20
	body := io.LimitReader(roles.NewBlobReader(11, upSize), upSize)
	req, _ := http.NewRequest("CCM_POST", base+"/cmg-sink", body)
	req.ContentLength = upSize
	resp, err := deviceClient(t, e.m, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sink struct {
		BodyLen    int64  `json:"body_len"`
		BodySHA256 string `json:"body_sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sink)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload: status %d, %v", resp.StatusCode, err)
	}
	upHash := sha256.New()
	_, _ = io.Copy(upHash, io.LimitReader(roles.NewBlobReader(11, upSize), upSize))
	if sink.BodyLen != upSize || sink.BodySHA256 != hex.EncodeToString(upHash.Sum(nil)) {
		t.Errorf("the role received %d bytes (sha256 %s), want %d identical bytes", sink.BodyLen, sink.BodySHA256, upSize)
	}

	gw := gws[0].peakRSS()
	conn := max(conns[0].peakRSS(), conns[1].peakRSS())
	t.Logf("peak RSS after a 1 GiB download and a 200 MiB upload: gateway %s, connector %s", mib(gw), mib(conn))
	const limit = 96 << 20
	if gw > limit || conn > limit {
		t.Errorf("peak RSS gateway %s, connector %s; want both under %s (bodies must stream, not buffer)", mib(gw), mib(conn), mib(limit))
	}
}

// load runs devices sending GETs until stop, counting outcomes.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, c *http.Client, urls []string, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				url := urls[(w+i)%len(urls)]
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := c.Do(req)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						if err != nil {
							l.failures = append(l.failures, err.Error())
						} else {
							l.failures = append(l.failures, resp.Status+" "+resp.Header.Get("CMG-Error"))
						}
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func TestKillConnectorLosesNoIdempotentRequest(t *testing.T) {
	e := newProcEnv(t)
	_, conns := e.startAll()
	var urls []string
	for _, g := range e.m.Gateways {
		urls = append(urls, g.ClientURL+e.m.ExamplePath)
	}
	l := startLoad(t, deviceClient(t, e.m, true), urls, 8)
	defer l.stop()
	waitFor(t, "steady traffic", 10*time.Second, func() bool { return l.ok.Load() > 200 })

	killed := time.Now()
	conns[0].kill(syscall.SIGKILL)
	for _, g := range e.m.Gateways {
		waitFor(t, "cp1 gone from "+g.AdminURL, 10*time.Second, func() bool {
			st, ok := tryStatus(g.AdminURL)
			return ok && !st.has("cp1")
		})
	}
	gone := time.Since(killed)
	t.Logf("cp1's sessions left /api/v1/status %v after kill -9", gone.Round(time.Millisecond))
	if gone > 5*time.Second {
		t.Errorf("the killed connector stayed in /api/v1/status for %v, want under 5s", gone)
	}
	before := l.ok.Load()
	waitFor(t, "traffic through cp2 alone", 10*time.Second, func() bool { return l.ok.Load() > before+200 })

	conns[0].restart()
	for _, g := range e.m.Gateways {
		waitFor(t, "cp1 back on "+g.AdminURL, 15*time.Second, func() bool {
			st, ok := tryStatus(g.AdminURL)
			return ok && st.has("cp1")
		})
	}
	served := func() float64 {
		return metricValue(scrape(t, e.m.Connectors[0].AdminURL), "cmg_connector_requests_total")
	}
	waitFor(t, "cp1 to take traffic again", 10*time.Second, func() bool { return served() > 50 })
	l.stop()
	t.Logf("requests: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d idempotent requests failed around the kill, want 0; first: %v", n, l.failures)
	}
}

func TestGatewayRestartConnectorsReconnect(t *testing.T) {
	e := newProcEnv(t)
	gws, _ := e.startAll()
	gws[0].kill(syscall.SIGKILL)
	for _, c := range e.m.Connectors {
		waitFor(t, c.Name+" to see instance 0 gone", 10*time.Second, func() bool {
			return connectorConnected(c.AdminURL, 0) == 0
		})
	}
	// Let the connectors back off a few rounds, as during a real restart.
	time.Sleep(1500 * time.Millisecond)
	gws[0].restart()
	g := e.m.Gateways[0]
	waitFor(t, "gateway 0 to be back", 15*time.Second, func() bool {
		resp, err := httpGetQuick(g.AdminURL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	back := time.Now()
	waitFor(t, "both connectors on gateway 0", 10*time.Second, func() bool { return e.sessions(g.AdminURL) == 2 })
	took := time.Since(back)
	t.Logf("connectors reconnected %v after gateway 0 was back", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("reconnect took %v, want within 2s", took)
	}
}

// connectorConnected is 1 when the connector's tunnel to instance i is up, 0
// when down, -1 when the connector does not answer.
func connectorConnected(adminURL string, i int) int {
	resp, err := httpGetQuick(adminURL + "/api/v1/status")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		Instances []struct {
			Instance  int  `json:"instance"`
			Connected bool `json:"connected"`
		} `json:"instances"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || i >= len(st.Instances) {
		return -1
	}
	if st.Instances[i].Connected {
		return 1
	}
	return 0
}
