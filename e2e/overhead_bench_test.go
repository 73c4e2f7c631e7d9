package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/tracing"
)

// BenchmarkInstrumentationOverhead measures what full instrumentation costs in
// requests per second: two copies of the demo run as separate processes of the
// built binary, one with traces sampled at 1 % (exported to a real collector)
// and access logs at info, the other with tracing off and the log at warn (no
// access lines). Metrics, wire counters and the cost model are part of every
// request and stay on in both. The load (keep-alive GETs of a 1 kB body through
// gateway instance 0, CMG_BENCH_CONNS connections) alternates between the two,
// round after round, so drift on a shared machine hits both; the report is the
// median of the rounds. Run it alone:
//
//	go test ./e2e -run '^$' -bench InstrumentationOverhead -benchtime 1x
//
// CMG_BENCH_ROUNDS (default 5) and CMG_BENCH_SECONDS (default 8) set the rounds
// and the length of each measurement; CMG_BENCH_PROFILE=DIR saves CPU profiles of
// the loaded gateway and connectors of both sides in the last round.
func BenchmarkInstrumentationOverhead(b *testing.B) {
	rounds := envInt("CMG_BENCH_ROUNDS", 5)
	secs := envInt("CMG_BENCH_SECONDS", 8)
	conns := envInt("CMG_BENCH_CONNS", 16)
	col := startCollector(b)
	off := newProcEnv(b)
	full := newProcEnv(b)
	instrument(b, off, false, col)
	instrument(b, full, true, col)
	off.startAll()
	full.startAll()

	offClient := deviceClient(b, off.m, true)
	fullClient := deviceClient(b, full.m, true)
	path := mpPrefix + "/cmg-blob?size=1000"
	// Warm both up.
	loadFor(b, offClient, off.m.Gateways[0].ClientURL+path, conns, 2*time.Second)
	loadFor(b, fullClient, full.m.Gateways[0].ClientURL+path, conns, 2*time.Second)

	var offRPS, fullRPS []float64
	b.ResetTimer()
	measure := func(e *procEnv, c *http.Client, name string, r int) float64 {
		d := time.Duration(secs) * time.Second
		if dir := os.Getenv("CMG_BENCH_PROFILE"); dir != "" && r == rounds-1 {
			// CPU profiles of the loaded gateway and connectors in the last round.
			var wg sync.WaitGroup
			for _, p := range []struct{ part, admin string }{
				{"gateway", e.m.Gateways[0].AdminURL}, {"cp1", e.m.Connectors[0].AdminURL}, {"cp2", e.m.Connectors[1].AdminURL},
			} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fetchProfile(b, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.admin, secs-1), filepath.Join(dir, name+"-"+p.part+".pprof"))
				}()
			}
			defer wg.Wait()
		}
		return loadFor(b, c, e.m.Gateways[0].ClientURL+path, conns, d)
	}
	for r := 0; r < rounds; r++ {
		// ABBA order, so neither side always runs first.
		if r%2 == 0 {
			offRPS = append(offRPS, measure(off, offClient, "off", r))
			fullRPS = append(fullRPS, measure(full, fullClient, "full", r))
		} else {
			fullRPS = append(fullRPS, measure(full, fullClient, "full", r))
			offRPS = append(offRPS, measure(off, offClient, "off", r))
		}
		b.Logf("round %d: off %.0f req/s, full %.0f req/s", r+1, offRPS[r], fullRPS[r])
	}
	b.StopTimer()
	mo, mf := median(offRPS), median(fullRPS)
	b.ReportMetric(mo, "off-req/s")
	b.ReportMetric(mf, "full-req/s")
	b.ReportMetric(100*mf/mo, "full/off-%")
	if mf < 0.95*mo {
		b.Errorf("full instrumentation: %.0f req/s, %.1f %% of %.0f with it off; want at least 95 %%", mf, 100*mf/mo, mo)
	}
}

// instrument rewrites a demo's configs: full is traces at 1 % to the collector
// and access logs; otherwise tracing off and the log at warn.
func instrument(b *testing.B, e *procEnv, full bool, col *collector) {
	b.Helper()
	for _, g := range e.m.Gateways {
		cfg := gateway.DefaultConfig()
		if err := configfile.Load(g.Config, &cfg); err != nil {
			b.Fatal(err)
		}
		cfg.Log.Level = "warn"
		if full {
			cfg.Log.Level = "info"
			cfg.Tracing.Endpoint, cfg.Tracing.Protocol, cfg.Tracing.SampleRatio = col.grpcURL, tracing.ProtocolGRPC, 0.01
		}
		writeConfig(b, g.Config, cfg)
	}
	for _, c := range e.m.Connectors {
		cfg := connector.DefaultConfig()
		if err := configfile.Load(c.Config, &cfg); err != nil {
			b.Fatal(err)
		}
		cfg.Log.Level = "warn"
		if full {
			cfg.Log.Level = "info"
			cfg.Tracing.Endpoint, cfg.Tracing.Protocol, cfg.Tracing.SampleRatio = col.grpcURL, tracing.ProtocolGRPC, 0.01
		}
		writeConfig(b, c.Config, cfg)
	}
}

func writeConfig(b *testing.B, path string, v any) {
	data, err := configfile.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// loadFor runs conns keep-alive loops of GETs for d and returns the requests per
// second answered 200.
func loadFor(b *testing.B, c *http.Client, url string, conns int, d time.Duration) float64 {
	b.Helper()
	var ok, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := c.Get(url)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

func fetchProfile(b *testing.B, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Error(err)
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envInt(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err == nil && v > 0 {
		return v
	}
	return def
}
