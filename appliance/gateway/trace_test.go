package gateway

import (
	"bufio"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestTracingOffAllocatesNothing checks the request path's tracing hooks do
// nothing, and allocate nothing, when tracing is off.
func TestTracingOffAllocatesNothing(t *testing.T) {
	m, err := newRequestMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{m: m}
	x := &exchange{r: httptest.NewRequest("GET", "/x", nil), w: &responseWriter{}, kindIdx: noRole}
	bw := bufio.NewWriter(io.Discard)
	n := testing.AllocsPerRun(100, func() {
		g.startSpan(x)
		g.startStreamSpan(x)
		if writeTraceparent(bw, x) != 0 {
			t.Fatal("a traceparent was written with tracing off")
		}
		g.endStreamSpan(x)
		g.observeDuration(x, time.Millisecond)
		if _, ok := traceAttr(x); ok {
			t.Fatal("a trace_id attribute with tracing off")
		}
		g.endSpan(x, 200, time.Time{})
	})
	if n != 0 {
		t.Errorf("got %v allocations per request, want 0", n)
	}
	if x.trace.span != nil || x.trace.stream != nil {
		t.Errorf("spans were made with tracing off")
	}
}
