package connector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/tracing"
	"github.com/cmg-gateway/cmg/tunnel"
)

// role is one published role: its internal URL and the proxy to it.
type role struct {
	cfg     RoleConfig
	base    *url.URL
	kindIdx int
	proxy   *httputil.ReverseProxy
	// pool and timeout serve the fast path (fastpath.go).
	pool    *rolePool
	timeout time.Duration
	m       *metrics
	log     *slog.Logger

	mu      sync.Mutex
	healthy bool
	detail  string
}

func newRole(rc RoleConfig, certs *certHolder, m *metrics, bufs bufferPool, log *slog.Logger) (*role, error) {
	base, err := url.Parse(rc.URL)
	if err != nil {
		return nil, fmt.Errorf("connector: role %s url: %w", rc.ID, err)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = strings.TrimSuffix(base.RawPath, "/")
	tlsCfg := &tls.Config{GetClientCertificate: certs.clientCert, MinVersion: tls.VersionTLS12}
	if len(rc.CAFiles) > 0 {
		if tlsCfg.RootCAs, err = auth.LoadPool(rc.CAFiles); err != nil {
			return nil, fmt.Errorf("connector: role %s CAs: %w", rc.ID, err)
		}
	}
	timeout := rc.Timeout
	if timeout == 0 {
		timeout = DefaultRoleTimeout
	}
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		// Accept-Encoding passes through untouched: the role and the device agree
		// on encodings, not the connector.
		DisableCompression: true,
		WriteBufferSize:    32 << 10,
		ReadBufferSize:     32 << 10,
	}
	r := &role{cfg: rc, base: base, kindIdx: kindIndex(rc.Kind), m: m, log: log, healthy: true, timeout: timeout}
	r.pool = newFastPool(base, tlsCfg)
	r.proxy = &httputil.ReverseProxy{
		Rewrite:        r.rewrite,
		Transport:      transport,
		ModifyResponse: r.observe,
		ErrorHandler:   r.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BufferPool:     bufs,
		FlushInterval:  -1,
	}
	return r, nil
}

// rewrite maps /<prefix>/<RoleID>/<rest> to the role's URL + /<rest>, keeping the
// gateway's forwarding headers.
func (r *role) rewrite(pr *httputil.ProxyRequest) {
	rest := restOfPath(pr.In.URL.EscapedPath())
	u := *r.base
	joined := u.EscapedPath() + "/" + rest
	if p, err := url.PathUnescape(joined); err == nil {
		u.Path = p
		u.RawPath = joined
	}
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = r.base.Host
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := pr.In.Header[k]; v != nil {
			pr.Out.Header[k] = v
		}
	}
	*pr.Out = *pr.Out.WithContext(context.WithValue(pr.Out.Context(), startKey{}, time.Now()))
}

// restOfPath strips "/<prefix>/<RoleID>/" from an escaped path.
func restOfPath(p string) string {
	p = strings.TrimPrefix(p, "/")
	for i := 0; i < 2; i++ {
		_, after, ok := strings.Cut(p, "/")
		if !ok {
			return ""
		}
		p = after
	}
	return p
}

type startKey struct{}

// observe records the role's latency to the response header.
func (r *role) observe(resp *http.Response) error {
	if t, ok := resp.Request.Context().Value(startKey{}).(time.Time); ok {
		observeBackend(r.m.backendDuration[r.kindIdx], resp.Request.Context(), time.Since(t).Seconds())
	}
	return nil
}

func (r *role) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	if req.Context().Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		// The gateway closed the stream: the device went away.
		w.WriteHeader(httperror.StatusClientClosed)
		return
	}
	r.writeFailure(w, req.Header.Get("Cmg-Request-Id"), err)
}

// writeFailure logs a request the role did not answer and answers it with
// the error contract's body: BackendTimeout when it ran out of time, else
// BackendUnavailable. Both paths to the role (the fast path and the reverse
// proxy) answer through it.
func (r *role) writeFailure(w http.ResponseWriter, reqID string, err error) httperror.Reason {
	reason := httperror.BackendUnavailable
	detail := "the role did not answer"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		reason, detail = httperror.BackendTimeout, "the role did not answer in time"
	}
	r.log.Warn("connector: role request failed", "role_id", r.cfg.ID, "kind", r.cfg.Kind,
		"request_id", reqID, "reason", reason, "err", err)
	httperror.Write(w, reqID, httperror.Wrap(reason, detail, err))
	return reason
}

func (r *role) setHealth(ok bool, detail string) (changed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed = r.healthy != ok
	r.healthy, r.detail = ok, detail
	return changed
}

func (r *role) health() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthy, r.detail
}

// serveStream serves one request stream from a gateway.
func (c *Connector) serveStream(w http.ResponseWriter, req *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	r := c.route(req)
	if c.tr != nil && !tracing.NotSampled(req.Header) {
		var sp trace.Span
		req, sp = c.startSpan(req)
		defer endSpan(sp, r, rec)
	}
	if r == nil {
		httperror.Write(rec, req.Header.Get("Cmg-Request-Id"), httperror.New(httperror.RouteNotFound, "this connector does not serve the path"))
		c.m.requests.WithLabelValues("none", codeLabel(rec.code())).Inc()
		return
	}
	defer func() {
		c.m.requests.WithLabelValues(string(r.cfg.Kind), codeLabel(rec.code())).Inc()
	}()
	r.proxy.ServeHTTP(rec, req)
}

// route finds the role a stream's path is for, checking the prefix is one the
// role accepts.
func (c *Connector) route(req *http.Request) *role { return c.routePath(req.URL.Path) }

// routePath is route for a path.
func (c *Connector) routePath(path string) *role {
	p := strings.TrimPrefix(path, "/")
	prefix, after, _ := strings.Cut(p, "/")
	roleID, _, _ := strings.Cut(after, "/")
	r := c.roles[roleID]
	if r == nil {
		return nil
	}
	var want string
	switch {
	case strings.EqualFold(prefix, "CCM_Proxy_MutualAuth"):
		want = tunnel.AuthMutual
	case strings.EqualFold(prefix, "CCM_Proxy_ServerAuth"):
		want = tunnel.AuthServer
	default:
		return nil
	}
	for _, a := range r.cfg.Auth {
		if a == want {
			return r
		}
	}
	return nil
}

// statusRecorder remembers the status written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// bufferPool lends the reverse proxy 32 KiB copy buffers.
type bufferPool struct{ p *sync.Pool }

func newBufferPool() bufferPool {
	return bufferPool{&sync.Pool{New: func() any { return make([]byte, 32<<10) }}}
}

func (b bufferPool) Get() []byte { return b.p.Get().([]byte) }

// Put returns a buffer. Storing a slice header costs one small allocation per
// Put; the reverse proxy's interface leaves no way around it.
//
//lint:ignore SA6002 see above
func (b bufferPool) Put(buf []byte) { b.p.Put(buf) }
