package connector

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/notify"
	"github.com/cmg-gateway/cmg/tracing"
	"github.com/cmg-gateway/cmg/tunnel"
)

// streamHandler serves the connector's request streams (tunnel.StreamHandler).
// A request for a published role that is not traced takes the fast path: its
// header is read from the stream, written to a pooled keep-alive connection to
// the role, and the role's answer is written back to the stream, with no
// http.Server, ReverseProxy or http.Transport in between. Anything else (the
// notification replay, unknown paths, traced requests, headers over
// streamBufferSize) goes to net/http and the handler chain as before.
type streamHandler struct {
	c    *Connector
	next http.Handler
}

func (h *streamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.next.ServeHTTP(w, r) }

const (
	// streamBufferSize bounds the request header the fast path takes.
	streamBufferSize = 4 << 10
	// streamWriteSize is the buffer of what the fast path writes to a stream:
	// a small response's header and body leave in one frame.
	streamWriteSize = 16 << 10
	// streamHeaderTimeout bounds reading a request header (the tunnel
	// client's default ReadHeaderTimeout).
	streamHeaderTimeout = 30 * time.Second
)

var (
	streamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, streamBufferSize) }}
	streamWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, streamWriteSize) }}
)

// ServeStream implements tunnel.StreamHandler.
func (h *streamHandler) ServeStream(st net.Conn, _ int) net.Conn {
	br := streamReaders.Get().(*bufio.Reader)
	br.Reset(st)
	defer streamReaders.Put(br)
	_ = st.SetReadDeadline(time.Now().Add(streamHeaderTimeout))
	hdr, ok := peekHeader(br)
	var r *role
	if ok {
		r = h.c.fastRole(hdr)
	}
	if r == nil {
		_ = st.SetReadDeadline(time.Time{})
		return tunnel.NewPrefixConn(st, tunnel.Unread(br))
	}
	fr := fastRequests.Get().(*fastRequest)
	defer fastRequests.Put(fr)
	if !parseFastRequest(hdr, fr) {
		_ = st.SetReadDeadline(time.Time{})
		return tunnel.NewPrefixConn(st, tunnel.Unread(br))
	}
	_, _ = br.Discard(len(hdr))
	_ = st.SetReadDeadline(time.Time{})
	fr.body = fr.bodyFrom(br)
	code := r.serveFast(st, fr)
	fr.body = nil
	st.Close()
	h.c.m.requests.WithLabelValues(string(r.cfg.Kind), codeLabel(code)).Inc()
	br.Reset(nil)
	return nil
}

// peekHeader returns the request header (through its blank line) without
// consuming it, or false when it does not fit the buffer or the stream ends.
func peekHeader(br *bufio.Reader) ([]byte, bool) {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], true
		}
		if br.Buffered() >= br.Size() {
			return nil, false
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, false
		}
	}
}

// fastRole returns the role a request header is for when the fast path may
// serve it, else nil.
func (c *Connector) fastRole(hdr []byte) *role {
	line, rest, _ := bytes.Cut(hdr, []byte("\r\n"))
	_, line, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil
	}
	target, _, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(target) == 0 || target[0] != '/' {
		return nil
	}
	path, _, _ := bytes.Cut(target, []byte("?"))
	p := string(path)
	if p == notify.ReplayPath {
		return nil
	}
	// The prefix and RoleID as sent; escaped ones go the long way, which
	// matches them unescaped.
	prefix, after, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	roleID, _, _ := strings.Cut(after, "/")
	if strings.IndexByte(prefix, '%') >= 0 || strings.IndexByte(roleID, '%') >= 0 {
		return nil
	}
	r := c.routePath(p)
	if r == nil {
		return nil
	}
	if c.tr != nil && !headerNotSampled(rest) {
		return nil // traced: the long way makes the connector's and role's spans
	}
	return r
}

// headerNotSampled reports whether the header lines carry one traceparent
// that says "not sampled".
func headerNotSampled(lines []byte) bool {
	var tp []string
	for len(lines) > 0 {
		var l []byte
		l, lines, _ = bytes.Cut(lines, []byte("\r\n"))
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), tracing.HeaderTraceparent) {
			tp = append(tp, string(bytes.TrimSpace(v)))
		}
	}
	return tracing.NotSampled(http.Header{tracing.HeaderTraceparent: tp})
}

// watchBodiesOver is the response size from which the fast path watches the
// stream for the gateway's close while it relays the body.
const watchBodiesOver = 256 << 10

// exchange states, settled by one CompareAndSwap between the fast path and
// its watcher of the stream.
const (
	exRunning  = 0
	exAborted  = 1 // the gateway closed the stream: the role connection was closed
	exFinished = 2
)

// serveFast forwards one request to the role and its answer to the stream,
// and returns the status for the metrics.
func (r *role) serveFast(st net.Conn, fr *fastRequest) int {
	req, reqID := fr.req, fr.reqID
	bodyless := fr.length == 0
	start := time.Now()
	var (
		rc   *roleConn
		resp *http.Response
		err  error
	)
	for try := 0; ; try++ {
		if rc, err = r.pool.get(context.Background()); err != nil {
			break
		}
		if err = r.writeRequest(rc, fr); err == nil {
			_ = rc.SetReadDeadline(time.Now().Add(r.timeout))
			resp, err = readRoleResponse(rc.br, req)
			_ = rc.SetReadDeadline(time.Time{})
		}
		if err == nil {
			break
		}
		reused := rc.reused
		rc.Close()
		// A kept connection the role had closed: nothing of the request was
		// taken from the stream, so it may go again on a fresh connection.
		if !reused || !bodyless || try > 0 || !staleConnError(err) {
			break
		}
	}
	if err != nil {
		return r.fastError(st, reqID, err)
	}
	r.m.backendDuration[r.kindIdx].Observe(time.Since(start).Seconds())

	// The gateway closes the stream when its device goes away: a long body
	// stops then, as net/http's server cancels the reverse proxy's request.
	// A short one (most answers) is done before a watcher would start.
	var state atomic.Int32
	if resp.ContentLength < 0 || resp.ContentLength > watchBodiesOver {
		go func() {
			var one [1]byte
			_, _ = st.Read(one[:])
			if state.CompareAndSwap(exRunning, exAborted) {
				rc.Close()
			}
		}()
	}
	ok := writeFastResponse(st, req, resp, rc.br)
	resp.Body.Close()
	if state.CompareAndSwap(exRunning, exFinished) && ok && !resp.Close {
		r.pool.put(rc)
	} else {
		rc.Close()
	}
	return resp.StatusCode
}

// staleConnError reports an error of a kept connection that the role closed
// while it idled: the request failed before any answer came.
func staleConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || isConnReset(err)
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// readRoleResponse reads the role's response header, skipping informational
// responses.
func readRoleResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("the role switched protocols")
		}
	}
}

// writeRequest writes the request for the role: its path rewritten onto the
// role's URL, the header lines without hop-by-hop fields, then the body.
func (r *role) writeRequest(rc *roleConn, fr *fastRequest) error {
	bw := rc.bw
	bw.WriteString(fr.method)
	bw.WriteByte(' ')
	bw.WriteString(r.target(fr.path, fr.query))
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.base.Host)
	bw.WriteString("\r\n")
	bw.Write(fr.lines)
	switch {
	case fr.length > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(fr.length, 10))
		bw.WriteString("\r\n")
	case fr.length < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case fr.method == http.MethodPost || fr.method == http.MethodPut || fr.method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	var err error
	if fr.length != 0 {
		bp := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(bp)
		// writerOnly hides bufio.Writer's ReadFrom, which would hand the
		// copy to the socket's, with a buffer of its own each time.
		body := &bodyReader{r: fr.body}
		if fr.length > 0 {
			var n int64
			n, err = io.CopyBuffer(writerOnly{bw}, body, *bp)
			if err == nil && n < fr.length && body.err == nil {
				body.err = io.ErrUnexpectedEOF // the stream ended inside the body
			}
		} else {
			cw := httputil.NewChunkedWriter(bw)
			if _, err = io.CopyBuffer(writerOnly{cw}, body, *bp); err == nil {
				if err = cw.Close(); err == nil {
					_, err = bw.WriteString("\r\n")
				}
			}
		}
		if body.err != nil {
			return &bodyError{body.err}
		}
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

type writerOnly struct{ io.Writer }

// bodyReader keeps the error of reading the request body from the stream
// apart from the role connection's.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// bodyError is a failure reading the request body from the stream: the
// gateway's side, never the role's.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// target is the request target on the role for an escaped path and raw
// query: the role URL's path joined with what follows /<prefix>/<RoleID>/,
// and the query (as rewrite does).
func (r *role) target(escapedPath, rawQuery string) string {
	base := r.base.EscapedPath()
	joined := base + "/" + restOfPath(escapedPath)
	p := joined
	if _, err := url.PathUnescape(joined); err != nil {
		p = base
	}
	if p == "" {
		p = "/"
	}
	if rawQuery != "" {
		return p + "?" + rawQuery
	}
	return p
}

func dropHopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func listedIn(connHeaders []string, k string) bool {
	for _, v := range connHeaders {
		for f := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

// writeFastResponse writes the role's response to the stream: one frame for
// a small one, flushed whenever the role has nothing more at hand, as the
// reverse proxy flushes (FlushInterval -1). It reports whether the role's
// body was read to its end and the stream took all of it.
func writeFastResponse(st net.Conn, req *http.Request, resp *http.Response, roleBuf *bufio.Reader) bool {
	sw := streamWriters.Get().(*bufio.Writer)
	sw.Reset(st)
	defer func() { sw.Reset(nil); streamWriters.Put(sw) }()
	code := resp.StatusCode
	noBody := req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	sw.WriteString("HTTP/1.1 ")
	sw.WriteString(resp.Status)
	sw.WriteString("\r\n")
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if dropHopHeader(k) || listedIn(conn, k) || (k == "Content-Length" && !noBody) {
			continue
		}
		for _, v := range vs {
			sw.WriteString(k)
			sw.WriteString(": ")
			sw.WriteString(v)
			sw.WriteString("\r\n")
		}
	}
	chunked := false
	switch {
	case noBody:
	case resp.ContentLength >= 0:
		sw.WriteString("Content-Length: ")
		sw.WriteString(strconv.FormatInt(resp.ContentLength, 10))
		sw.WriteString("\r\n")
	default:
		chunked = true
		sw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	sw.WriteString("Connection: close\r\n\r\n")
	if noBody {
		_, err := io.Copy(io.Discard, resp.Body)
		return err == nil && sw.Flush() == nil
	}
	var w io.Writer = sw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(sw)
		w = cw
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return false
			}
			if roleBuf.Buffered() == 0 {
				if err := sw.Flush(); err != nil {
					return false
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The role broke off: the gateway sees the body cut, never a
			// shorter success.
			_ = sw.Flush()
			return false
		}
	}
	if chunked {
		if cw.Close() != nil {
			return false
		}
		sw.WriteString("\r\n")
	}
	return sw.Flush() == nil
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// fastError answers a request the role did not answer, as proxyError does,
// and returns the status.
func (r *role) fastError(st net.Conn, reqID string, err error) int {
	if _, ok := errors.AsType[*bodyError](err); ok {
		return httperror.StatusClientClosed // the gateway went away mid-body
	}
	w := &streamResponse{h: http.Header{}}
	reason := r.writeFailure(w, reqID, err)
	_, _ = st.Write(w.buf.Bytes())
	return reason.Status()
}

// streamResponse collects a small response the connector makes itself.
type streamResponse struct {
	h    http.Header
	buf  bytes.Buffer
	code int
}

func (w *streamResponse) Header() http.Header { return w.h }

func (w *streamResponse) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	w.buf.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	_ = w.h.Write(&w.buf)
	w.buf.WriteString("Connection: close\r\n\r\n")
}

func (w *streamResponse) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.buf.Write(b)
}
