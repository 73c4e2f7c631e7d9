package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/metrics/cost"
	"github.com/cmg-gateway/cmg/tracing"
)

// collector is a real OpenTelemetry Collector (bin/otelcol-cmg, built with ocb)
// receiving OTLP over gRPC and HTTP and writing what it receives to a file.
type collector struct {
	grpcURL, httpURL string
	file             string
}

func startCollector(t testing.TB) *collector {
	t.Helper()
	bin := tool(t, "otelcol-cmg")
	dir := t.TempDir()
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := &collector{grpcURL: "http://" + grpcAddr, httpURL: "http://" + httpAddr, file: filepath.Join(dir, "spans.jsonl")}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
exporters:
  file:
    path: %s
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
`, grpcAddr, httpAddr, c.file)
	cfgPath := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startTool(t, bin, "--config=file:"+cfgPath)
	for _, a := range []string{grpcAddr, httpAddr} {
		waitFor(t, "the collector to listen on "+a, 30*time.Second, func() bool {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false
			}
			conn.Close()
			return true
		})
	}
	return c
}

// otlpSpan is a span as the collector's file exporter writes it (OTLP JSON).
type otlpSpan struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Attributes   []struct {
		Key   string `json:"key"`
		Value struct {
			StringValue string `json:"stringValue"`
			IntValue    string `json:"intValue"`
		} `json:"value"`
	} `json:"attributes"`
	service string
}

func (s otlpSpan) attr(k string) string {
	for _, a := range s.Attributes {
		if a.Key == k {
			if a.Value.StringValue != "" {
				return a.Value.StringValue
			}
			return a.Value.IntValue
		}
	}
	return ""
}

// spans reads every span the collector wrote so far.
func (c *collector) spans(t *testing.T) []otlpSpan {
	t.Helper()
	data, err := os.ReadFile(c.file)
	if err != nil {
		return nil
	}
	var out []otlpSpan
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var req struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []struct {
						Key   string `json:"key"`
						Value struct {
							StringValue string `json:"stringValue"`
						} `json:"value"`
					} `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []otlpSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			continue // a line being written
		}
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					svc = a.Value.StringValue
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					s.service = svc
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// OTLP span kinds.
const (
	kindServer = 2
	kindClient = 3
)

// TestOneTraceAcrossBothHops sends one request through a gateway that exports
// over OTLP/gRPC (sampling every trace) and a connector that exports over
// OTLP/HTTP with a sampling ratio of 0, so it records only what the gateway's
// trace context says is sampled. The collector must receive the request's four
// spans in one trace: gateway → tunnel stream → connector → role. The role
// receives the role span's trace context; the gateway's latency histogram has
// the trace id as an exemplar; its access line carries the trace id and a
// keyed hash of the device, never the identity. A traceparent the device sends
// is not followed.
func TestOneTraceAcrossBothHops(t *testing.T) {
	col := startCollector(t)
	e := newEnv(t, envOptions{
		gateway: func(_ int, c *gateway.Config) {
			c.Tracing.Endpoint, c.Tracing.Protocol, c.Tracing.SampleRatio = col.grpcURL, tracing.ProtocolGRPC, 1
		},
		connector: func(_ int, c *connector.Config) {
			c.Tracing.Endpoint, c.Tracing.Protocol, c.Tracing.SampleRatio = col.httpURL, tracing.ProtocolHTTP, 0
		},
	})
	const deviceTrace = "0af7651916cd43dd8448eb211c80319c"
	res := e.curl(true, e.m.Gateways[0].ClientURL+mpPrefix+"/cmg-echo",
		"-H", "traceparent: 00-"+deviceTrace+"-b7ad6b7169203331-01")
	if res.status != 200 {
		t.Fatalf("got %d, want 200: %s %s", res.status, res.body, res.stderr)
	}
	reqID := res.header.Get("Cmg-Request-Id")
	var got echo
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	roleTraceparent := got.header("Traceparent")
	openMetrics := scrapeOpenMetrics(t, e.gws[0].admin)
	e.stopAll() // flushes the spans

	var trace []otlpSpan
	waitFor(t, "the request's four spans at the collector", 30*time.Second, func() bool {
		trace = nil
		all := col.spans(t)
		tid := ""
		for _, s := range all {
			if s.Name == "gateway" && s.attr("cmg.request_id") == reqID {
				tid = s.TraceID
			}
		}
		for _, s := range all {
			if tid != "" && s.TraceID == tid {
				trace = append(trace, s)
			}
		}
		return len(trace) >= 4
	})
	by := map[string]otlpSpan{}
	for _, s := range trace {
		if _, dup := by[s.Name]; dup {
			t.Errorf("two %q spans in the trace", s.Name)
		}
		by[s.Name] = s
	}
	for _, c := range []struct {
		name, parent, service string
		kind                  int
	}{
		{"gateway", "", "cmg-gateway", kindServer},
		{"tunnel stream", "gateway", "cmg-gateway", kindClient},
		{"connector", "tunnel stream", "cmg-connector", kindServer},
		{"role", "connector", "cmg-connector", kindClient},
	} {
		s, ok := by[c.name]
		if !ok {
			t.Errorf("no %q span in the trace (got %d spans)", c.name, len(trace))
			continue
		}
		wantParent := ""
		if c.parent != "" {
			wantParent = by[c.parent].SpanID
		}
		if s.ParentSpanID != wantParent {
			t.Errorf("span %q: got parent %q, want %q (%s)", c.name, s.ParentSpanID, wantParent, c.parent)
		}
		if s.service != c.service || s.Kind != c.kind {
			t.Errorf("span %q: got service %s kind %d, want %s kind %d", c.name, s.service, s.Kind, c.service, c.kind)
		}
	}
	for _, s := range trace {
		t.Logf("span %-14s service %-13s trace %s span %s parent %s", s.Name, s.service, s.TraceID, s.SpanID, s.ParentSpanID)
	}
	gw := by["gateway"]
	if gw.TraceID == deviceTrace {
		t.Errorf("the gateway followed the device's traceparent")
	}
	if gw.attr("cmg.role_id") != demo.MPRoleID || gw.attr("http.response.status_code") != "200" {
		t.Errorf("gateway span: role_id %q status %q, want %s 200", gw.attr("cmg.role_id"), gw.attr("http.response.status_code"), demo.MPRoleID)
	}
	if want := "00-" + gw.TraceID + "-" + by["role"].SpanID + "-01"; roleTraceparent != want {
		t.Errorf("the role received traceparent %q, want %q", roleTraceparent, want)
	}
	if !strings.Contains(openMetrics, `trace_id="`+gw.TraceID+`"`) {
		t.Errorf("no exemplar with trace id %s on the gateway's /metrics", gw.TraceID)
	}
	checkAccessLine(t, e, reqID, gw.TraceID)
}

// checkAccessLine finds the request's access line in gateway 0's log and checks
// its fields and the device hash: HMAC-SHA-256 under a key derived from the
// demo's key file, so it is the same after a restart and on every instance.
func checkAccessLine(t *testing.T, e *env, reqID, traceID string) {
	t.Helper()
	data, err := os.ReadFile(e.logs["gateway-0"])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ToLower(data), []byte(demo.DeviceName)) {
		t.Errorf("the gateway's log holds the device identity %q", demo.DeviceName)
	}
	var line map[string]any
	for _, l := range bytes.Split(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == "access" && m["request_id"] == reqID {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no access line for request %s", reqID)
	}
	key, err := cost.LoadOrCreateKey(filepath.Join(e.m.Dir, demo.DeviceHashKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("cmg access-log device hash v1"))
	mac = hmac.New(sha256.New, mac.Sum(nil))
	mac.Write([]byte(demo.DeviceName))
	wantHash := hex.EncodeToString(mac.Sum(nil)[:8])
	for k, want := range map[string]any{
		"trace_id": traceID, "role": "management_point", "method": "GET", "status": float64(200),
		"device": wantHash, "bytes_in": float64(0), "auth": "certificate",
	} {
		if line[k] != want {
			t.Errorf("access line %s: got %v, want %v", k, line[k], want)
		}
	}
	for _, k := range []string{"bytes_out", "duration_ms"} {
		if v, ok := line[k].(float64); !ok || v <= 0 {
			t.Errorf("access line %s: got %v, want a positive number", k, line[k])
		}
	}
	if _, ok := line["reason"]; ok {
		t.Errorf("access line of a success has a reason: %v", line["reason"])
	}
}

// scrapeOpenMetrics fetches /metrics as OpenMetrics, which carries exemplars.
func scrapeOpenMetrics(t *testing.T, adminURL string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return string(readAll(t, resp.Body))
}
