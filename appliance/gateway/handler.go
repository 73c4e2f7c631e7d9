package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/policies"
	"github.com/cmg-gateway/cmg/tunnel"
)

// The public prefixes of DESIGN sections 6 and 7.
const (
	prefixMutual    = "CCM_Proxy_MutualAuth"
	prefixServer    = "CCM_Proxy_ServerAuth"
	serviceMetadata = "ServiceMetadata"
)

// methodAllowed reports whether m is one of the methods of DESIGN section 7.
func methodAllowed(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, "PROPFIND", "CCM_POST", "BITS_POST":
		return true
	}
	return false
}

// idempotent methods may be retried on another connector while no response header
// has arrived (DESIGN section 5).
func idempotent(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == "PROPFIND"
}

// exchange is the state of one device request.
type exchange struct {
	w       *responseWriter
	r       *http.Request
	id      string
	start   time.Time
	role    *allowedRole
	kindIdx int
	ident   *auth.Identity
	reason  httperror.Reason
	errMsg  string
	// toConnector and fromConnector are the HTTP-level bytes exchanged with the
	// connector; fromClient is the request body read from the device.
	toConnector   int64
	fromConnector int64
	fromClient    int64
	attempts      int
	connector     string
	// preq is the policy's view of the request; permit holds its admission.
	preq   policies.Request
	permit policies.Permit
	// tooLarge is set by the body sender when the body went over its limit.
	tooLarge atomic.Bool
	trace    exchangeTrace
	// hdrLimit bounds the connector's response header (stall.go).
	hdrLimit responseHeaderLimit
}

// ServeHTTP is the device request path: method, prefix, authentication, route,
// then forwarding over a tunnel stream (DESIGN section 7).
func (g *Gateway) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	x := &exchange{
		w:       &responseWriter{ResponseWriter: rw},
		r:       r,
		id:      g.requestID(),
		start:   g.now(),
		kindIdx: noRole,
	}
	g.startSpan(x)
	defer g.finish(x)
	if !methodAllowed(r.Method) {
		g.fail(x, httperror.New(httperror.MethodNotAllowed, "method "+r.Method+" is not allowed"))
		return
	}
	if isContentPath(r.URL.Path) {
		g.serveContent(x)
		return
	}
	mode, roleID, rest, ok := parsePrefix(r.URL.Path)
	if !ok && r.URL.Path == notificationsPath {
		g.serveNotifications(x)
		return
	}
	if !ok {
		g.fail(x, httperror.New(httperror.RouteNotFound, "no route for this path"))
		return
	}
	if err := checkPath(r); err != nil {
		g.fail(x, err)
		return
	}
	id, err := g.auth.Authenticate(r, mode)
	if err != nil {
		g.fail(x, httperror.As(err, httperror.ClientCertificateRequired))
		return
	}
	x.ident = id
	g.observeDevice(id.Device)
	if strings.EqualFold(roleID, serviceMetadata) && rest == "" {
		g.serviceMetadata(x, mode)
		return
	}
	role := g.allow.Load().role(roleID)
	if role == nil || role.Kind == tunnel.DistributionPoint { // content only through /cmg/v1/content/
		g.fail(x, httperror.New(httperror.RouteNotFound, "no route for this path"))
		return
	}
	x.role, x.kindIdx = role, role.kindIdx
	if !g.admit(x) {
		return
	}
	defer x.permit.Release()
	g.forward(x, authValue(mode))
}

// parsePrefix splits /<prefix>/<RoleID>/<rest>. The prefix is matched without
// regard to case, as IIS does.
func parsePrefix(path string) (mode auth.Mode, roleID, rest string, ok bool) {
	p, ok := strings.CutPrefix(path, "/")
	if !ok {
		return 0, "", "", false
	}
	first, after, _ := strings.Cut(p, "/")
	switch {
	case strings.EqualFold(first, prefixMutual):
		mode = auth.Mutual
	case strings.EqualFold(first, prefixServer):
		mode = auth.Server
	default:
		return 0, "", "", false
	}
	roleID, rest, _ = strings.Cut(after, "/")
	if roleID == "" {
		return 0, "", "", false
	}
	return mode, roleID, rest, true
}

// checkPath refuses paths that could mean something else behind the connector's
// rewrite: dot segments, empty segments, encoded slashes and backslashes.
func checkPath(r *http.Request) *httperror.Error {
	raw := r.URL.EscapedPath()
	p := r.URL.Path
	bad := strings.Contains(p, "//") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") ||
		strings.Contains(p, "/./") || strings.HasSuffix(p, "/.") || strings.ContainsRune(p, '\\') ||
		strings.ContainsAny(p, "\x00\r\n") || ambiguousPath(p)
	if !bad {
		bad = hasAmbiguousEscape(raw)
	}
	if bad {
		return httperror.New(httperror.BadRequest, "the path is ambiguous")
	}
	return nil
}

// hasAmbiguousEscape reports an escaped slash, backslash, percent sign or NUL
// (%2f %5c %25 %00, any case) in a raw path, without lower-casing a copy.
func hasAmbiguousEscape(raw string) bool {
	for {
		i := strings.IndexByte(raw, '%')
		if i < 0 || i+2 >= len(raw) {
			return false
		}
		switch raw[i+1 : i+3] {
		case "2f", "2F", "5c", "5C", "25", "00":
			return true
		}
		raw = raw[i+1:]
	}
}

func authValue(m auth.Mode) string {
	if m == auth.Server {
		return tunnel.AuthServer
	}
	return tunnel.AuthMutual
}

// fail answers the device with an error the gateway made itself.
func (g *Gateway) fail(x *exchange, e *httperror.Error) {
	x.reason = e.Reason
	if e.Err != nil {
		x.errMsg = e.Err.Error()
	} else {
		x.errMsg = e.Detail
	}
	if x.w.wroteHeader {
		// Too late for an error response: cut the connection so the device sees
		// a broken response, never a silent success.
		panic(http.ErrAbortHandler)
	}
	httperror.Write(x.w, x.id, e)
}

// finish records metrics and the access log line of an exchange.
func (g *Gateway) finish(x *exchange) {
	if p := recover(); p != nil {
		g.record(x)
		if p == http.ErrAbortHandler {
			panic(p)
		}
		g.log.Error("gateway: panic serving request", "panic", p, "request_id", x.id)
		panic(http.ErrAbortHandler)
	}
	g.record(x)
}

func (g *Gateway) record(x *exchange) {
	end := g.now()
	d := end.Sub(x.start)
	code := x.w.status
	if x.reason == httperror.ClientClosed {
		code = httperror.StatusClientClosed
	}
	if code == 0 {
		code = http.StatusOK
	}
	m := g.m
	m.requests.WithLabelValues(roleKindLabels[x.kindIdx], methodLabel(x.r.Method), codeLabel(code)).Inc()
	g.observeDuration(x, d)
	g.endSpan(x, code, end)
	if x.reason != "" {
		if c := m.errors[x.reason]; c != nil {
			c.Inc()
		}
	}
	m.egress[peerClient][x.kindIdx].Add(float64(x.w.headerBytes + x.w.bodyBytes))
	if g.httpEgress {
		g.CountEgress(x.w.headerBytes + x.w.bodyBytes + x.toConnector)
	}
	m.ingress[peerClient][x.kindIdx].Add(float64(requestHeaderSize(x.r) + x.fromClient))
	m.egress[peerConnector][x.kindIdx].Add(float64(x.toConnector))
	m.ingress[peerConnector][x.kindIdx].Add(float64(x.fromConnector))
	if !g.log.Enabled(x.r.Context(), slog.LevelInfo) {
		return
	}
	var buf [17]slog.Attr // every attribute below: one allocation, or none
	attrs := append(buf[:0],
		slog.String("request_id", x.id),
		slog.String("method", x.r.Method),
		slog.Int("status", code),
		slog.String("role", roleKindLabels[x.kindIdx]),
		slog.Int64("bytes_in", x.fromClient),
		slog.Int64("bytes_out", x.w.bodyBytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", x.r.RemoteAddr),
	)
	if a, ok := traceAttr(x); ok {
		attrs = append(attrs, a)
	}
	if x.role != nil {
		attrs = append(attrs, slog.String("role_id", x.role.ID), slog.String("site", x.role.Site))
	}
	if x.connector != "" {
		attrs = append(attrs, slog.String("connector", x.connector), slog.Int("attempts", x.attempts))
	}
	if x.ident != nil {
		attrs = append(attrs, slog.String("auth", string(x.ident.Method)), slog.String("device", g.deviceHash(x.ident.Device)))
	}
	if x.reason != "" {
		attrs = append(attrs, slog.String("reason", string(x.reason)))
		if x.errMsg != "" {
			attrs = append(attrs, slog.String("error", x.errMsg))
		}
	}
	g.log.LogAttrs(x.r.Context(), slog.LevelInfo, "access", attrs...)
}

// requestHeaderSize estimates the bytes of the request line and header as sent.
func requestHeaderSize(r *http.Request) int64 {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return int64(n + 2)
}

// errClientGone marks a failure caused by the device (its body or connection).
var errClientGone = errors.New("device went away")
