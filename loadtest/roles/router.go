package roles

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// copyBufs pools the 32 KiB buffers of every body copy, so streaming a 1 GB blob or
// sinking a 200 MB upload costs no allocation per request.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// serverHeader is what IIS 10 (Windows Server 2016 to 2025) says; real MPs and WSUS
// servers answer with it.
const serverHeader = "Microsoft-IIS/10.0"

// mountOf splits a path into the role it is mounted under and the path behind the
// mount (in its original case, always starting with "/"). IIS matches paths without
// regard to case, so the mounts do too.
func mountOf(path string) (Role, string) {
	for _, m := range []struct {
		prefix string
		role   Role
	}{{"/mp", RoleMP}, {"/sup", RoleSUP}, {"/dp", RoleDP}} {
		if len(path) >= len(m.prefix) && strings.EqualFold(path[:len(m.prefix)], m.prefix) {
			rest := path[len(m.prefix):]
			if rest == "" {
				return m.role, "/"
			}
			if rest[0] == '/' {
				return m.role, rest
			}
		}
	}
	return RoleOther, path
}

// serveHTTP counts the request for its role, applies the test controls
// (?cmg-delay=, ?cmg-status=) and dispatches.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	role, rest := mountOf(r.URL.Path)
	acct := role
	if strings.EqualFold(rest, "/healthz") {
		// The connectors' health probes are not device traffic: counted apart,
		// so the site leg of a load test is what devices sent.
		acct = RoleOther
	}
	rc := s.counters.roles[acct]
	rc.requests.Add(1)
	cc, _ := r.Context().Value(connKey{}).(*countingConn)
	if cc != nil {
		cc.startRequest(rc)
	}
	body := &countingBody{ReadCloser: r.Body, rc: rc, cc: cc}
	r.Body = body
	cw := &countingWriter{ResponseWriter: w, rc: rc}
	defer body.finish()

	q := r.URL.Query()
	if d := q.Get("cmg-delay"); d != "" && !s.delay(r, d) {
		// The request went away (or the server is stopping): cut the connection
		// rather than let net/http answer an empty 200.
		panic(http.ErrAbortHandler)
	}
	if st := q.Get("cmg-status"); st != "" {
		s.counters.kind(kindStatus)
		writeStatusParam(cw, st)
		return
	}
	lower := strings.ToLower(rest)
	switch role {
	case RoleMP:
		cw.Header().Set("Server", serverHeader)
		s.serveMP(cw, r, rest, lower)
	case RoleSUP:
		cw.Header().Set("Server", serverHeader)
		s.serveSUP(cw, r, rest, lower)
	case RoleDP:
		cw.Header().Set("Server", serverHeader)
		s.serveDP(cw, r, rest, lower)
	default:
		s.serveRoot(cw, r, lower)
	}
}

// serveRoot answers what is outside the mounts: health, stats and the helpers.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request, lower string) {
	switch lower {
	case "/healthz":
		s.serveHealth(w, RoleOther)
	case "/roles/stats":
		s.counters.kind(kindStats)
		writeJSON(w, http.StatusOK, s.Stats())
	default:
		if !s.serveHelper(w, r, RoleOther, lower) {
			s.notFound(w)
		}
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, role Role) {
	s.counters.kind(kindHealth)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !s.healthy[role].Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "unhealthy\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// notFound is IIS's 404 for a path it does not know.
func (s *Server) notFound(w http.ResponseWriter) {
	s.counters.kind(kindOther)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, "<html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>\n")
}

// methodNotAllowed is IIS's 405 for a verb a handler does not take.
func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = io.WriteString(w, "<html><head><title>405 - HTTP verb used to access this page is not allowed.</title></head></html>\n")
}

// delay waits d (a Go duration, or milliseconds) capped at MaxDelay before the
// request is answered. It reports false when the request went away meanwhile.
func (s *Server) delay(r *http.Request, d string) bool {
	dur, err := time.ParseDuration(d)
	if err != nil {
		ms, err2 := strconv.ParseInt(d, 10, 64)
		if err2 != nil || ms < 0 {
			return true
		}
		dur = time.Duration(ms) * time.Millisecond
	}
	dur = min(dur, s.cfg.MaxDelay)
	if dur <= 0 {
		return true
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// writeStatusParam answers ?cmg-status=N with status N and a small JSON body.
func writeStatusParam(w http.ResponseWriter, st string) {
	code, err := strconv.Atoi(st)
	if err != nil || code < 200 || code > 599 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "cmg-status must be a status code in 200..599"})
		return
	}
	writeJSON(w, code, map[string]int{"status": code})
}

// countingBody counts a request body for its role and, at EOF, tells the counting
// connection that what it reads next belongs to the next request.
type countingBody struct {
	io.ReadCloser
	rc   *roleCounters
	cc   *countingConn
	done bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.rc.bodyIn.Add(uint64(n))
	if err != nil && !b.done {
		b.done = true
		if b.cc != nil {
			b.cc.bodyDone()
		}
	}
	return n, err
}

// maxDrain is how much of an unread request body finish reads so that its bytes are
// counted for the request's role; past it the server closes the connection instead.
const maxDrain = 64 << 20

// finish reads what the handler left of the body, then ends live attribution.
func (b *countingBody) finish() {
	if !b.done {
		bp := copyBufs.Get().(*[]byte)
		_, _ = io.CopyBuffer(io.Discard, io.LimitReader(b, maxDrain), *bp)
		copyBufs.Put(bp)
	}
	if !b.done && b.cc != nil {
		b.done = true
		b.cc.bodyDone()
	}
}

// countingWriter counts the response body for the role.
type countingWriter struct {
	http.ResponseWriter
	rc *roleCounters
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.rc.bodyOut.Add(uint64(n))
	return n, err
}

// ReadFrom keeps net/http's pooled copy path (http.ServeContent, io.Copy) intact.
func (w *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		bp := copyBufs.Get().(*[]byte)
		n, err = io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, src, *bp)
		copyBufs.Put(bp)
	}
	w.rc.bodyOut.Add(uint64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
