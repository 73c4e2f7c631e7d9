package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C trace context headers (https://www.w3.org/TR/trace-context/), in Go's
// canonical form. The gateway drops any a device sends and writes its own.
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
)

// TraceparentLen is the length of a version-00 traceparent value.
const TraceparentLen = 55

const hexDigits = "0123456789abcdef"

// AppendTraceparent appends the version-00 traceparent value of sc to b:
// 00-<trace id>-<span id>-<flags>, lower-case hex. It does not allocate when b
// has room.
func AppendTraceparent(b []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	b = append(b, '0', '0', '-')
	b = appendHex(b, tid[:])
	b = append(b, '-')
	b = appendHex(b, sid[:])
	b = append(b, '-')
	return appendHex(b, []byte{byte(sc.TraceFlags())})
}

func appendHex(b, src []byte) []byte {
	for _, c := range src {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// propagator parses and writes traceparent and tracestate.
var propagator = propagation.TraceContext{}

// Extract returns ctx with the remote span context of the request header h (a
// connector reads the one the gateway wrote), or ctx unchanged when h carries
// none or a malformed one.
func Extract(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes the span context of ctx into h (the connector's request to the
// role), replacing what was there.
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// NotSampled reports whether h carries a well-formed version-00 traceparent
// whose sampled flag is off. A process that follows its parent's decision then
// records nothing for the request and may leave the header as it is, which is
// much cheaper than starting spans that are not recorded.
func NotSampled(h http.Header) bool {
	v := h[HeaderTraceparent]
	if len(v) != 1 || len(v[0]) != TraceparentLen {
		return false
	}
	tp := v[0]
	if tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	f := tp[54]
	var bit byte
	switch {
	case f >= '0' && f <= '9':
		bit = (f - '0') & 1
	case f >= 'a' && f <= 'f':
		bit = (f - 'a' + 10) & 1
	default:
		return false
	}
	return bit == 0
}

// TraceID is the hex trace id of a valid span context, or "".
func TraceID(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
