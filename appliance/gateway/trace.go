package gateway

import (
	"bufio"
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cmg-gateway/cmg/tracing"
)

// exchangeTrace is the trace of one device request: the gateway's server span
// and the tunnel stream span of the current attempt. It stays zero when tracing
// is off, and nothing on the request path then touches it beyond a nil test.
type exchangeTrace struct {
	ctx    context.Context // carries span
	span   trace.Span
	stream trace.Span
}

// Span names and attributes of the gateway's spans.
const (
	spanGateway = "gateway"
	spanStream  = "tunnel stream"
)

// startSpan starts the gateway's server span of a request. Trace context a
// device sent is not followed: the gateway is where traces start.
func (g *Gateway) startSpan(x *exchange) {
	if g.obs.tr == nil {
		return
	}
	x.trace.ctx, x.trace.span = g.obs.tr.Start(context.Background(), spanGateway,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(x.start))
	if x.trace.span.IsRecording() {
		x.trace.span.SetAttributes(
			attribute.String("http.request.method", x.r.Method),
			attribute.String("cmg.request_id", x.id),
		)
	}
}

// endSpan ends the gateway's span with the request's outcome.
func (g *Gateway) endSpan(x *exchange, code int, end time.Time) {
	sp := x.trace.span
	if sp == nil {
		return
	}
	if sp.IsRecording() {
		sp.SetAttributes(attribute.Int("http.response.status_code", code), attribute.String("cmg.role", roleKindLabels[x.kindIdx]))
		if x.role != nil {
			sp.SetAttributes(attribute.String("cmg.role_id", x.role.ID), attribute.String("cmg.site", x.role.Site))
		}
		if x.connector != "" {
			sp.SetAttributes(attribute.String("cmg.connector", x.connector), attribute.Int("cmg.attempts", x.attempts))
		}
		if x.ident != nil {
			sp.SetAttributes(attribute.String("cmg.auth_method", string(x.ident.Method)))
		}
		if x.reason != "" {
			sp.SetAttributes(attribute.String("cmg.error", string(x.reason)))
			if code >= 500 {
				sp.SetStatus(codes.Error, string(x.reason))
			}
		}
	}
	sp.End(trace.WithTimestamp(end))
}

// startStreamSpan starts the tunnel stream span of one attempt, a child of the
// gateway's span; its context is what writeRequestHeader sends to the connector.
// A request that is not sampled gets no stream span (it would record nothing):
// the connector is sent the gateway span's context, which says "not sampled".
func (g *Gateway) startStreamSpan(x *exchange) {
	if x.trace.span == nil || !x.trace.span.SpanContext().IsSampled() {
		return
	}
	_, x.trace.stream = g.obs.tr.Start(x.trace.ctx, spanStream, trace.WithSpanKind(trace.SpanKindClient))
	if x.trace.stream.IsRecording() {
		x.trace.stream.SetAttributes(attribute.String("cmg.connector", x.connector), attribute.Int("cmg.attempt", x.attempts))
	}
}

// endStreamSpan ends the current attempt's span.
func (g *Gateway) endStreamSpan(x *exchange) {
	sp := x.trace.stream
	if sp == nil {
		return
	}
	if sp.IsRecording() {
		if x.w.status != 0 {
			sp.SetAttributes(attribute.Int("http.response.status_code", x.w.status))
		}
		if x.reason != "" {
			sp.SetStatus(codes.Error, string(x.reason))
		}
	}
	sp.End()
	x.trace.stream = nil
}

// writeTraceparent writes the trace context of the attempt's stream span (or,
// when not sampled, of the gateway's span) into the request header for the
// connector, and returns the bytes written.
func writeTraceparent(bw *bufio.Writer, x *exchange) int {
	sp := x.trace.stream
	if sp == nil {
		sp = x.trace.span
	}
	if sp == nil {
		return 0
	}
	sc := sp.SpanContext()
	if !sc.IsValid() {
		return 0
	}
	var buf [len(tracing.HeaderTraceparent) + 2 + tracing.TraceparentLen + 2]byte
	b := append(buf[:0], tracing.HeaderTraceparent...)
	b = append(b, ':', ' ')
	b = tracing.AppendTraceparent(b, sc)
	b = append(b, '\r', '\n')
	n, _ := bw.Write(b)
	return n
}

// spanContext is the gateway span's context (invalid when tracing is off).
func (t *exchangeTrace) spanContext() trace.SpanContext {
	if t.span == nil {
		return trace.SpanContext{}
	}
	return t.span.SpanContext()
}

// observeDuration records the request's duration, with the trace id as the
// exemplar when the request was sampled.
func (g *Gateway) observeDuration(x *exchange, d time.Duration) {
	o := g.m.duration[x.kindIdx]
	if sc := x.trace.spanContext(); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(d.Seconds())
}

// traceAttr is the access log's trace_id attribute, when there is a trace.
func traceAttr(x *exchange) (slog.Attr, bool) {
	sc := x.trace.spanContext()
	if !sc.IsValid() {
		return slog.Attr{}, false
	}
	return slog.String("trace_id", sc.TraceID().String()), true
}
