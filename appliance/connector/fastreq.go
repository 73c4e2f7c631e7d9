package connector

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
)

// fastRequest is a request header the fast path forwards without net/http's
// parser: the gateway wrote it from a request net/http had parsed (one
// Content-Length, no folded lines, its own Connection: close), so its lines go
// to the role as they are, but for the hop-by-hop ones. Anything unusual
// (another protocol version, a folded or nameless line, two lengths, a
// transfer coding but chunked, a path net/url would write otherwise) is left to
// net/http, which answers as it always did.
type fastRequest struct {
	method string
	path   string // escaped, as the gateway sent it
	query  string
	reqID  string
	length int64  // -1: chunked
	lines  []byte // header lines for the role, each ending in CRLF
	req    *http.Request
	body   io.Reader
}

var fastRequests = sync.Pool{New: func() any { return &fastRequest{lines: make([]byte, 0, streamBufferSize)} }}

// methodRequests hold the method of a request for reading its response
// (http.ReadResponse needs to know a HEAD); shared, never changed.
var methodRequests sync.Map // method → *http.Request

func methodRequest(m string) *http.Request {
	if r, ok := methodRequests.Load(m); ok {
		return r.(*http.Request)
	}
	r, _ := methodRequests.LoadOrStore(m, &http.Request{Method: m})
	return r.(*http.Request)
}

// parseFastRequest reads hdr (the request header through its blank line) into
// fr, or reports false for net/http to take it.
func parseFastRequest(hdr []byte, fr *fastRequest) bool {
	line, rest, _ := bytes.Cut(hdr, crlf)
	method, line, ok1 := bytes.Cut(line, sp)
	target, proto, ok2 := bytes.Cut(line, sp)
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || len(method) == 0 || !isToken(method) || len(target) == 0 || target[0] != '/' {
		return false
	}
	path, query, _ := bytes.Cut(target, []byte("?"))
	if !validPath(path) || bytes.ContainsFunc(query, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return false
	}
	if _, err := url.PathUnescape(string(path)); err != nil {
		return false
	}
	fr.method, fr.path, fr.query = string(method), string(path), string(query)
	fr.length, fr.reqID = 0, ""
	var conn [][]byte
	sawLength, chunked := false, false
	// First pass: framing and what Connection lists.
	for l := rest; len(l) > 0; {
		var ln []byte
		ln, l, _ = bytes.Cut(l, crlf)
		if len(ln) == 0 {
			break
		}
		name, value, ok := bytes.Cut(ln, colon)
		if !ok || len(name) == 0 || !isToken(name) || !validValue(value) {
			return false // folded or malformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if sawLength || err != nil || n < 0 || len(value) == 0 || value[0] == '+' {
				return false
			}
			sawLength, fr.length = true, n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if chunked || !bytes.EqualFold(value, []byte("chunked")) {
				return false
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if tok = bytes.TrimSpace(tok); len(tok) > 0 {
					conn = append(conn, tok)
				}
			}
		case bytes.EqualFold(name, []byte("Cmg-Request-Id")):
			fr.reqID = string(value)
		}
	}
	if chunked {
		if sawLength {
			return false
		}
		fr.length = -1
	}
	// Second pass: the lines the role gets.
	fr.lines = fr.lines[:0]
	for l := rest; len(l) > 0; {
		var ln []byte
		ln, l, _ = bytes.Cut(l, crlf)
		if len(ln) == 0 {
			break
		}
		name, _, _ := bytes.Cut(ln, colon)
		if skipForRole(name, conn) {
			continue
		}
		fr.lines = append(append(fr.lines, ln...), crlf...)
	}
	fr.req = methodRequest(fr.method)
	return true
}

var (
	crlf  = []byte("\r\n")
	sp    = []byte(" ")
	colon = []byte(":")
)

// skipForRole reports a header the role must not get: hop-by-hop fields, the
// framing and Host the connector writes itself, Forwarded (as the reverse
// proxy drops it), and what Connection lists.
func skipForRole(name []byte, conn [][]byte) bool {
	for _, h := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host", "Forwarded"} {
		if bytes.EqualFold(name, []byte(h)) {
			return true
		}
	}
	for _, c := range conn {
		if bytes.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// isToken reports an HTTP token (a method or a field name).
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

// validValue reports a field value without control characters (but tab).
func validValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validPath reports a path net/url would send as it is (its EscapedPath):
// unreserved characters, sub-delimiters, ':', '@', '/', brackets and escapes.
func validPath(p []byte) bool {
	for _, c := range p {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("-._~!$&'()*+,;=:@[]%/"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// bodyFrom is the request body that follows the header in br.
func (fr *fastRequest) bodyFrom(br *bufio.Reader) io.Reader {
	switch {
	case fr.length > 0:
		return io.LimitReader(br, fr.length)
	case fr.length < 0:
		return httputil.NewChunkedReader(br)
	}
	return nil
}
