package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/tunnel"
)

// maxTries bounds the connectors one request may try.
const maxTries = 4

// forward sends the request to a connector of the role's site and streams the
// response back, retrying on another connector as DESIGN section 5 allows: any
// request whose stream could not be opened; an idempotent one (GET, HEAD,
// PROPFIND without a body) while no response header has arrived.
func (g *Gateway) forward(x *exchange, authV string) {
	r := x.r
	if limit := g.bodyLimit(x.role.Kind); limit > 0 && r.ContentLength > limit {
		g.fail(x, httperror.New(httperror.RequestTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit)))
		return
	}
	g.m.inflight[x.kindIdx].Inc()
	defer g.m.inflight[x.kindIdx].Dec()
	retryable := idempotent(r.Method) && r.ContentLength == 0
	var triedBuf [maxTries]*tunnel.Session
	tried := triedBuf[:0]
	var last *httperror.Error
	for len(tried) < maxTries {
		sess := g.reg.Pick(authV, x.role.ID, tried...)
		if sess == nil {
			break
		}
		tried = append(tried, sess)
		x.attempts++
		x.connector = sess.Name
		st, err := sess.Open()
		if err != nil {
			// Nothing reached the connector: any request may go elsewhere.
			last = httperror.Wrap(httperror.BackendUnavailable, "the connector's tunnel failed", err)
			continue
		}
		// Released even when the relay aborts the handler mid-body.
		err = func() error { defer sess.Release(); return g.exchangeOn(x, st) }()
		g.noteStall(sess, err)
		if err == nil {
			return
		}
		e := httperror.As(err, httperror.BackendUnavailable)
		if !errors.Is(err, errRetryable) || !retryable {
			g.fail(x, e)
			return
		}
		last = e
		g.log.Debug("gateway: retrying on another connector", "request_id", x.id, "connector", sess.Name, "err", err)
	}
	if last == nil {
		g.fail(x, httperror.New(httperror.ConnectorUnavailable, "no connector serves this role now"))
		return
	}
	g.fail(x, last)
}

// errRetryable marks a failure before any response header arrived, where an
// idempotent request may be tried on another connector.
var errRetryable = errors.New("no response header yet")

// exchangeOn sends the request on one stream and relays the response. It returns
// nil once a response has been relayed (or cut off mid-body), else an error
// (wrapping errRetryable when no response header arrived).
func (g *Gateway) exchangeOn(x *exchange, st *yamux.Stream) error {
	defer st.Close()
	g.startStreamSpan(x)
	defer g.endStreamSpan(x)
	r := x.r
	bw := g.writers.Get().(*bufio.Writer)
	bw.Reset(st)
	defer func() { bw.Reset(nil); g.writers.Put(bw) }()

	hdrLen := writeRequestHeader(bw, x, g.cfg.Instance)
	x.toConnector += int64(hdrLen)
	hasBody := r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
	var bodyDone chan error
	if !hasBody {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("send request: %w: %w", err, errRetryable)
		}
	} else {
		bodyDone = make(chan error, 1)
		go func() { bodyDone <- g.sendBody(x, bw, st) }()
	}

	_ = st.SetReadDeadline(g.now().Add(g.cfg.Backend.ResponseHeaderTimeout))
	br := g.readers.Get().(*bufio.Reader)
	x.hdrLimit = responseHeaderLimit{r: st, left: maxResponseHeader}
	br.Reset(&x.hdrLimit)
	defer func() { br.Reset(nil); g.readers.Put(br) }()
	resp, err := readResponse(br, r)
	x.hdrLimit.left = -1 // the body is bounded by the progress deadlines
	if err != nil {
		st.Close()
		bodyErr := waitBody(bodyDone, x)
		if x.tooLarge.Load() {
			return bodyErr // RequestTooLarge: not retried, answered as it is
		}
		return classifyHeaderError(x, err, bodyErr)
	}
	g.relay(x, st, resp)
	if bodyDone != nil {
		st.Close()
		if err := waitBody(bodyDone, x); err != nil && (!x.w.wroteHeader || x.tooLarge.Load()) {
			// A body cut at its limit after the role answered still fails the
			// request: the device must not take it for delivered.
			return err
		}
	}
	return nil
}

// waitBody waits for the body sender; if it is stuck reading a slow device, the
// device's read deadline is pulled in so it returns.
func waitBody(done chan error, x *exchange) error {
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		return err
	case <-time.After(50 * time.Millisecond):
	}
	_ = http.NewResponseController(x.w).SetReadDeadline(time.Now())
	return <-done
}

// readResponse reads the connector's response header, skipping informational
// responses.
func readResponse(br *bufio.Reader, r *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

func classifyHeaderError(x *exchange, err, bodyErr error) error {
	if x.r.Context().Err() != nil || errors.Is(bodyErr, errClientGone) {
		return httperror.Wrap(httperror.ClientClosed, "the device went away", err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, yamux.ErrTimeout) {
		return httperror.Wrap(httperror.BackendTimeout, "no response from the site in time", err)
	}
	return httperror.Wrap(httperror.BackendUnavailable, "the connector did not answer", fmt.Errorf("%w: %w", err, errRetryable))
}

// sendBody streams the device's body to the stream. Small bodies share one write
// with the header.
func (g *Gateway) sendBody(x *exchange, bw *bufio.Writer, st *yamux.Stream) error {
	r := x.r
	body := &deviceBody{r: r.Body, rc: http.NewResponseController(x.w), progress: g.cfg.Client.ProgressTimeout, now: g.now}
	limit := g.bodyLimit(x.role.Kind)
	var err error
	if r.ContentLength > 0 {
		if r.ContentLength <= int64(bw.Available()) {
			_, err = io.CopyN(bw, body, r.ContentLength)
			if err == nil {
				err = bw.Flush()
			}
		} else {
			if err = bw.Flush(); err == nil {
				buf := g.bufs.Get().(*[]byte)
				_, err = io.CopyBuffer(struct{ io.Writer }{st}, io.LimitReader(body, r.ContentLength), *buf)
				g.bufs.Put(buf)
			}
		}
	} else {
		cw := httputil.NewChunkedWriter(bw)
		buf := g.bufs.Get().(*[]byte)
		var n int64
		src := io.Reader(body)
		if limit > 0 {
			src = io.LimitReader(body, limit+1)
		}
		n, err = io.CopyBuffer(cw, src, *buf)
		g.bufs.Put(buf)
		if err == nil && limit > 0 && n > limit {
			err = httperror.New(httperror.RequestTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit))
		}
		if err == nil {
			if err = cw.Close(); err == nil {
				_, err = bw.WriteString("\r\n")
			}
		}
		if err == nil {
			err = bw.Flush()
		}
	}
	x.fromClient = body.n
	x.toConnector += body.n
	if body.err != nil {
		// The device stalled or left mid-body: stop waiting for (or relaying)
		// the role's answer now, not after the response header timeout.
		_ = st.SetReadDeadline(time.Now())
		return fmt.Errorf("read device body: %w: %w", body.err, errClientGone)
	}
	if e, ok := errors.AsType[*httperror.Error](err); ok && e.Reason == httperror.RequestTooLarge {
		// The device must get the 413, never the connector's answer to a cut
		// body: stop waiting for (or relaying) the response at once.
		x.tooLarge.Store(true)
		_ = st.SetReadDeadline(time.Now())
		return e
	}
	return err
}

// deviceBody reads the device's body, keeping a progress deadline on the device
// connection and remembering its own errors apart from the stream's.
type deviceBody struct {
	r        io.Reader
	rc       *http.ResponseController
	progress time.Duration
	now      func() time.Time
	lastDL   time.Time
	n        int64
	err      error
}

func (b *deviceBody) Read(p []byte) (int, error) {
	if now := b.now(); now.Sub(b.lastDL) > b.progress/4 {
		_ = b.rc.SetReadDeadline(now.Add(b.progress))
		b.lastDL = now
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		if _, limit := errors.AsType[*httperror.Error](err); !limit {
			b.err = err // the device's own failure, not a body limit
		}
	}
	return n, err
}

// relay copies the connector's response to the device.
func (g *Gateway) relay(x *exchange, st *yamux.Stream, resp *http.Response) {
	defer resp.Body.Close()
	h := x.w.Header()
	copyResponseHeader(h, resp.Header)
	h.Set("CMG-Request-ID", x.id)
	if reason := httperror.Reason(resp.Header.Get(httperror.Header)); reason != "" && reason.Valid() {
		x.reason = reason // the connector answered an error itself; count it
		x.errMsg = "answered by connector " + x.connector
	}
	x.fromConnector += responseHeaderSize(resp.StatusCode, resp.Header)
	x.w.WriteHeader(resp.StatusCode)
	if x.r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return
	}
	flush := resp.ContentLength < 0 || isEventStream(resp.Header)
	rc := http.NewResponseController(x.w)
	buf := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(buf)
	progress := g.cfg.Client.ProgressTimeout
	var lastDL time.Time
	for {
		now := g.now()
		if now.Sub(lastDL) > progress/4 {
			_ = st.SetReadDeadline(now.Add(progress))
			_ = rc.SetWriteDeadline(now.Add(progress))
			lastDL = now
		}
		if x.tooLarge.Load() {
			// Checked after moving the deadline, which the body sender pulls in
			// after setting the flag: one of the two stops this loop.
			x.reason = httperror.RequestTooLarge
			x.errMsg = "the request body went over its limit while the response was relayed"
			panic(http.ErrAbortHandler)
		}
		n, rerr := resp.Body.Read(*buf)
		if n > 0 {
			x.fromConnector += int64(n)
			if _, werr := x.w.Write((*buf)[:n]); werr != nil {
				x.reason = httperror.ClientClosed
				x.errMsg = werr.Error()
				return
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			_ = rc.SetWriteDeadline(time.Time{})
			return
		}
		if rerr != nil {
			// The response broke mid-body: the device must see a broken response.
			reason := httperror.BackendUnavailable
			var ne net.Error
			switch {
			case x.tooLarge.Load():
				reason = httperror.RequestTooLarge
			case errors.As(rerr, &ne) && ne.Timeout():
				reason = httperror.BackendTimeout
			}
			x.reason = reason
			x.errMsg = "response cut mid-body: " + rerr.Error()
			panic(http.ErrAbortHandler)
		}
	}
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// bodyLimit is the largest request body for a role kind (0: none).
func (g *Gateway) bodyLimit(k tunnel.RoleKind) int64 {
	return int64(g.cfg.Backend.BodyLimits[string(k)])
}

// requestID returns a fresh request id (16 hex digits).
func (g *Gateway) requestID() string {
	var b [16]byte
	v := g.rand()
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = hex[v&0xf]
		v >>= 4
	}
	return string(b[:])
}
