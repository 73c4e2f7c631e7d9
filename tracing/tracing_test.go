package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string // problem paths
	}{
		{"default is off and valid", func(*Config) {}, nil},
		{"grpc endpoint", func(c *Config) { c.Endpoint = "http://127.0.0.1:4317" }, nil},
		{"https http endpoint", func(c *Config) { c.Endpoint = "https://otel.example:4318/v1/traces"; c.Protocol = ProtocolHTTP }, nil},
		{"bare host:port", func(c *Config) { c.Endpoint = "127.0.0.1:4317" }, []string{"endpoint"}},
		{"no host", func(c *Config) { c.Endpoint = "http:///x" }, []string{"endpoint"}},
		{"bad protocol", func(c *Config) { c.Protocol = "thrift" }, []string{"protocol"}},
		{"ratio above 1", func(c *Config) { c.SampleRatio = 1.5 }, []string{"sample_ratio"}},
		{"ratio negative", func(c *Config) { c.SampleRatio = -0.1 }, []string{"sample_ratio"}},
		{"every problem at once", func(c *Config) { c.Protocol = ""; c.SampleRatio = 2; c.ExportTimeout = 0 },
			[]string{"protocol", "sample_ratio", "export_timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			var got []string
			if ps, ok := err.(*configfile.Problems); ok {
				for _, p := range ps.List {
					got = append(got, p.Path)
				}
			} else if err != nil {
				t.Fatalf("got %T %v, want *configfile.Problems", err, err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got problems %v, want %v (%v)", got, tc.want, err)
			}
		})
	}
}

func TestNewOffIsNil(t *testing.T) {
	tr, err := New(context.Background(), DefaultConfig(), Options{Service: "cmg-gateway"})
	if err != nil || tr != nil {
		t.Fatalf("got %v, %v; want nil, nil", tr, err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of a nil tracer: got %v, want nil", err)
	}
}

func TestNewBothProtocols(t *testing.T) {
	for _, p := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(p, func(t *testing.T) {
			c := DefaultConfig()
			c.Endpoint = "http://127.0.0.1:1"
			c.Protocol = p
			c.ExportTimeout = 100 * time.Millisecond
			tr, err := New(context.Background(), c, Options{Service: "cmg-gateway", Instance: "0"})
			if err != nil || tr == nil {
				t.Fatalf("got %v, %v; want a tracer", tr, err)
			}
			_, sp := tr.Tracer().Start(context.Background(), "x")
			sp.End()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = tr.Shutdown(ctx) // the export fails (nothing listens); Shutdown must return
		})
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags trace.TraceFlags
	}{
		{"sampled", trace.FlagsSampled},
		{"not sampled", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
			sid := trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: tc.flags})
			var buf [TraceparentLen]byte
			got := string(AppendTraceparent(buf[:0], sc))
			want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0" + map[bool]string{true: "1", false: "0"}[tc.flags.IsSampled()]
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			h := http.Header{HeaderTraceparent: {got}}
			back := trace.SpanContextFromContext(Extract(context.Background(), h))
			if back.TraceID() != tid || back.SpanID() != sid || back.TraceFlags() != tc.flags || !back.IsRemote() {
				t.Errorf("extracted %v, want trace %v span %v flags %v remote", back, tid, sid, tc.flags)
			}
		})
	}
}

func TestNotSampled(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want bool
	}{
		{"not sampled", http.Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}, true},
		{"sampled", http.Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, false},
		{"other flags, not sampled", http.Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0a"}}, true},
		{"none", http.Header{}, false},
		{"two", http.Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "x"}}, false},
		{"other version", http.Header{HeaderTraceparent: {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}, false},
		{"short", http.Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"}}, false},
		{"bad flag digit", http.Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NotSampled(tc.h); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzNotSampled checks NotSampled against the OpenTelemetry propagator: when it
// says "not sampled", the propagator must read a valid, unsampled context.
func FuzzNotSampled(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-00",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tp string) {
		h := http.Header{HeaderTraceparent: {tp}}
		if !NotSampled(h) {
			return
		}
		sc := trace.SpanContextFromContext(Extract(context.Background(), h))
		if sc.IsValid() && sc.IsSampled() {
			t.Errorf("%q: NotSampled, but the propagator reads a sampled context", tp)
		}
	})
}

func TestAppendTraceparentDoesNotAllocate(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	var buf [TraceparentLen]byte
	if n := testing.AllocsPerRun(100, func() { _ = AppendTraceparent(buf[:0], sc) }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
}
