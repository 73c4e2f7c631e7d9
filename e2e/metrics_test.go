package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/cmg-gateway/cmg/metrics"
)

// hostPort strips the scheme of an admin URL.
func hostPort(adminURL string) string { return strings.TrimPrefix(adminURL, "http://") }

// someTraffic sends requests through every gateway instance, so the families
// that appear with the first request exist.
func someTraffic(t *testing.T, e *env) {
	t.Helper()
	c := e.deviceClient(true)
	for _, g := range e.m.Gateways {
		for _, path := range []string{mpPrefix + "/cmg-echo", supPrefix + "/cmg-blob?size=1000"} {
			resp, err := c.Get(g.ClientURL + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: got %d, want 200", path, resp.StatusCode)
			}
		}
	}
}

// TestPrometheusFindsEveryFamily has a real Prometheus scrape both gateway
// instances and both connectors, then asks its HTTP API for every family of
// DESIGN section 11 built so far (metrics.GatewayFamilies and
// metrics.ConnectorFamilies): each must be there, with its type and exactly its
// labels (besides the job and instance Prometheus adds).
func TestPrometheusFindsEveryFamily(t *testing.T) {
	e := newEnv(t, envOptions{})
	jobs := map[string][]string{}
	for _, g := range e.gws {
		jobs["gateway"] = append(jobs["gateway"], hostPort(g.admin))
	}
	for _, c := range e.conns {
		jobs["connector"] = append(jobs["connector"], hostPort(c.admin))
	}
	someTraffic(t, e)
	prom := startPrometheus(t, jobs)

	for _, job := range []struct {
		name     string
		families []metrics.Family
		targets  int
	}{
		{"gateway", metrics.GatewayFamilies, len(e.gws)},
		{"connector", metrics.ConnectorFamilies, len(e.conns)},
	} {
		waitFor(t, "Prometheus to scrape every "+job.name, 30*time.Second, func() bool {
			up := prom.query(fmt.Sprintf(`sum(up{job=%q})`, job.name))
			return len(up) == 1 && up[0].value == fmt.Sprint(job.targets)
		})
		// Scrapes after the traffic: wait until the last family to appear is in.
		waitFor(t, "the "+job.name+" families after traffic", 30*time.Second, func() bool {
			for _, f := range job.families {
				if len(prom.series(seriesName(f)+fmt.Sprintf(`{job=%q}`, job.name))) == 0 {
					return false
				}
			}
			return true
		})
		for _, f := range job.families {
			t.Run(job.name+"/"+f.Name, func(t *testing.T) {
				checkFamily(t, prom, job.name, f)
			})
		}
	}
}

// seriesName is the name a family's series have in Prometheus (a classic
// histogram is stored as _bucket, _sum and _count).
func seriesName(f metrics.Family) string {
	if f.Type == "histogram" {
		return f.Name + "_count"
	}
	return f.Name
}

func checkFamily(t *testing.T, prom *promServer, job string, f metrics.Family) {
	series := prom.series(seriesName(f) + fmt.Sprintf(`{job=%q}`, job))
	if len(series) == 0 {
		t.Fatalf("Prometheus has no series of %s from job %s", f.Name, job)
	}
	want := append([]string(nil), f.Labels...)
	sort.Strings(want)
	for _, s := range series {
		var got []string
		for k := range s {
			if k != "__name__" && k != "job" && k != "instance" {
				got = append(got, k)
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("series %v: got labels %v, want %v", s, got, want)
		}
	}
	if f.Type == "histogram" {
		if b := prom.series(f.Name + fmt.Sprintf(`_bucket{job=%q}`, job)); len(b) == 0 {
			t.Errorf("%s has no classic buckets in Prometheus", f.Name)
		}
	}
	var meta map[string][]struct {
		Type string `json:"type"`
		Help string `json:"help"`
	}
	// Scraped as OpenMetrics, a counter's family name has no _total.
	metaName := f.Name
	if f.Type == "counter" {
		metaName = strings.TrimSuffix(f.Name, "_total")
	}
	prom.api("/api/v1/metadata", url.Values{"metric": {metaName}}, &meta)
	if len(meta[metaName]) == 0 {
		t.Fatalf("Prometheus has no metadata for %s", metaName)
	}
	for _, m := range meta[metaName] {
		if m.Type != f.Type {
			t.Errorf("type: got %s, want %s", m.Type, f.Type)
		}
		if m.Help == "" {
			t.Errorf("no help text")
		}
	}
}

// TestPromtoolCheckMetricsIsClean lints each /metrics page with `promtool check
// metrics`, which must report nothing.
func TestPromtoolCheckMetricsIsClean(t *testing.T) {
	promtool := tool(t, "promtool")
	e := newEnv(t, envOptions{})
	someTraffic(t, e)
	parts := append(append([]*part(nil), e.gws...), e.conns...)
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, p.admin+"/metrics", nil)
			req.Header.Set("Accept", "text/plain;version=0.0.4")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page := readAll(t, resp.Body)
			resp.Body.Close()
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(page)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) != 0 {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
		})
	}
}

// TestHistogramsAreClassicAndNative checks the latency histograms carry the
// classic buckets (1 ms to 60 s) and a native histogram beside them, as the
// protobuf exposition shows them.
func TestHistogramsAreClassicAndNative(t *testing.T) {
	e := newEnv(t, envOptions{})
	someTraffic(t, e)
	for _, c := range []struct {
		admin, family string
	}{
		{e.gws[0].admin, "cmg_gateway_request_duration_seconds"},
		{e.conns[0].admin, "cmg_connector_backend_duration_seconds"},
	} {
		t.Run(c.family, func(t *testing.T) {
			f := scrapeProto(t, c.admin)[c.family]
			if f == nil {
				t.Fatalf("no family %s", c.family)
			}
			var seen bool
			for _, m := range f.Metric {
				h := m.GetHistogram()
				if h.GetSampleCount() == 0 {
					continue
				}
				seen = true
				b := h.GetBucket()
				if len(b) != len(metrics.LatencyBuckets) || b[0].GetUpperBound() != 0.001 || b[len(b)-1].GetUpperBound() != 60 {
					t.Errorf("classic buckets: got %d from %v to %v, want %d from 0.001 to 60", len(b), b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(), len(metrics.LatencyBuckets))
				}
				if len(h.GetPositiveSpan()) == 0 || h.Schema == nil {
					t.Errorf("no native histogram (schema %v, spans %v)", h.Schema, h.GetPositiveSpan())
				}
			}
			if !seen {
				t.Errorf("no observation in %s", c.family)
			}
		})
	}
}

// scrapeProto fetches /metrics in the protobuf exposition, which carries native
// histograms.
func scrapeProto(t *testing.T, adminURL string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+"/metrics", nil)
	req.Header.Set("Accept", `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	out := map[string]*dto.MetricFamily{}
	for {
		var f dto.MetricFamily
		if err := dec.Decode(&f); err != nil {
			if err == io.EOF {
				return out
			}
			t.Fatalf("decode: %v", err)
		}
		out[f.GetName()] = &f
	}
}
