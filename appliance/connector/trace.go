package connector

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cmg-gateway/cmg/profiling"
	"github.com/cmg-gateway/cmg/tracing"
)

// Span names of the connector's spans.
const (
	spanConnector = "connector"
	spanRole      = "role"
)

// newTracing builds the tracer (nil when tracing is off) and, when on, wraps
// every role's transport so the request to the role has its own span.
func (c *Connector) newTracing() error {
	t, err := tracing.New(context.Background(), c.cfg.Tracing, tracing.Options{
		Service: "cmg-connector", Instance: c.cfg.Site + "/" + c.cfg.Name,
	})
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	c.tracer, c.tr = t, t.Tracer()
	for _, r := range c.roles {
		r.proxy.Transport = &roleTransport{base: r.proxy.Transport, tr: c.tr, role: r}
	}
	return nil
}

// runObservability labels the connector's goroutines for profiles; the returned
// stop flushes buffered spans.
func (c *Connector) runObservability(ctx context.Context) (stop func()) {
	profiling.Labels(ctx, profiling.Tags{Instance: c.cfg.Name, Role: "connector"})
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.tracer.Shutdown(sctx); err != nil {
			c.log.Warn("connector: flushing spans", "err", err)
		}
	}
}

// startSpan starts the connector's server span of a stream, a child of the
// gateway's tunnel stream span named by the traceparent the gateway wrote.
func (c *Connector) startSpan(req *http.Request) (*http.Request, trace.Span) {
	ctx := tracing.Extract(req.Context(), req.Header)
	ctx, sp := c.tr.Start(ctx, spanConnector, trace.WithSpanKind(trace.SpanKindServer))
	if sp.IsRecording() {
		sp.SetAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("cmg.request_id", req.Header.Get("Cmg-Request-Id")),
			attribute.String("cmg.gateway_instance", req.Header.Get("Cmg-Gateway-Instance")),
		)
	}
	return req.WithContext(ctx), sp
}

// endSpan ends the connector's span with the status answered.
func endSpan(sp trace.Span, r *role, rec *statusRecorder) {
	if sp.IsRecording() {
		code := rec.code()
		sp.SetAttributes(attribute.Int("http.response.status_code", code))
		if r != nil {
			sp.SetAttributes(attribute.String("cmg.role", string(r.cfg.Kind)), attribute.String("cmg.role_id", r.cfg.ID))
		}
		if code >= 500 {
			sp.SetStatus(codes.Error, http.StatusText(code))
		}
	}
	sp.End()
}

// roleTransport gives the request to the role a client span, and sends the
// role the span's trace context. The request it is given is the reverse proxy's
// own outbound copy, so setting its header is safe.
type roleTransport struct {
	base http.RoundTripper
	tr   trace.Tracer
	role *role
}

func (t *roleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := trace.SpanFromContext(req.Context())
	if !parent.SpanContext().IsValid() {
		return t.base.RoundTrip(req)
	}
	ctx, sp := t.tr.Start(req.Context(), spanRole, trace.WithSpanKind(trace.SpanKindClient))
	tracing.Inject(ctx, req.Header)
	recording := sp.IsRecording()
	if recording {
		sp.SetAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Host),
			attribute.String("cmg.role", string(t.role.cfg.Kind)),
			attribute.String("cmg.role_id", t.role.cfg.ID),
		)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		if recording {
			sp.RecordError(err)
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
		return nil, err
	}
	if !recording {
		sp.End()
		return resp, nil
	}
	sp.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		sp.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, sp: sp}
	return resp, nil
}

// spanBody ends the role span when the response body is closed, so the span
// covers the whole response.
type spanBody struct {
	io.ReadCloser
	sp   trace.Span
	done bool
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.done {
		b.done = true
		b.sp.End()
	}
	return err
}

// observeBackend records the role's latency, with the trace id as the exemplar
// when the request is sampled.
func observeBackend(o prometheus.Observer, ctx context.Context, seconds float64) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(seconds)
}
