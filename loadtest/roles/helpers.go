package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// EchoReply is what cmg-echo answers: the request as the simulated role received it.
type EchoReply struct {
	Role             Role                `json:"role"`
	Method           string              `json:"method"`
	Path             string              `json:"path"`
	RawQuery         string              `json:"raw_query"`
	RequestURI       string              `json:"request_uri"`
	Proto            string              `json:"proto"`
	Host             string              `json:"host"`
	RemoteAddr       string              `json:"remote_addr"`
	Headers          map[string][]string `json:"headers"`
	Trailers         map[string][]string `json:"trailers,omitempty"`
	ContentLength    int64               `json:"content_length"`
	TransferEncoding []string            `json:"transfer_encoding,omitempty"`
	BodyLen          int64               `json:"body_len"`
	BodySHA256       string              `json:"body_sha256"`
	// TLSClientSubject is the verified client certificate's subject when the role
	// serves HTTPS and the connector presented one.
	TLSClientSubject string `json:"tls_client_subject,omitempty"`
}

// SinkReply is what cmg-sink answers after reading the whole body.
type SinkReply struct {
	Method     string `json:"method"`
	BodyLen    int64  `json:"body_len"`
	BodySHA256 string `json:"body_sha256"`
}

// serveHelper answers the test helpers, which work under either mount and at the root:
// any path whose last segment is cmg-echo, cmg-blob or cmg-sink. It reports whether
// the path was a helper.
func (s *Server) serveHelper(w http.ResponseWriter, r *http.Request, role Role, lower string) bool {
	switch lower[strings.LastIndexByte(lower, '/')+1:] {
	case "cmg-echo":
		s.counters.kind(kindEcho)
		s.serveEcho(w, r, role)
	case "cmg-blob":
		s.counters.kind(kindBlob)
		serveBlob(w, r)
	case "cmg-sink":
		s.counters.kind(kindSink)
		serveSink(w, r)
	default:
		return false
	}
	return true
}

// hashBody reads the whole body through a pooled buffer and returns its length and
// SHA-256.
func hashBody(body io.Reader) (int64, string, error) {
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(h, body, *bp)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request, role Role) {
	n, sum, err := hashBody(r.Body)
	if err != nil {
		return // the client went away mid-body; nobody to answer
	}
	rep := EchoReply{
		Role: role, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		RequestURI: r.RequestURI, Proto: r.Proto, Host: r.Host, RemoteAddr: r.RemoteAddr,
		Headers: r.Header, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
		BodyLen: n, BodySHA256: sum,
	}
	if len(r.Trailer) > 0 {
		rep.Trailers = r.Trailer
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rep.TLSClientSubject = r.TLS.PeerCertificates[0].Subject.String()
	}
	writeJSON(w, http.StatusOK, rep)
}

func serveSink(w http.ResponseWriter, r *http.Request) {
	n, sum, err := hashBody(r.Body)
	if err != nil {
		return
	}
	writeJSON(w, http.StatusOK, SinkReply{Method: r.Method, BodyLen: n, BodySHA256: sum})
}

// maxBlob bounds cmg-blob's size parameter (1 TiB).
const maxBlob = 1 << 40

// blobModTime is the Last-Modified of every generated file: fixed, so that
// If-Modified-Since and If-Range behave the same on every run.
var blobModTime = time.Date(2024, time.March, 12, 8, 0, 0, 0, time.UTC)

// serveBlob streams size deterministic bytes (cmg-blob?size=N&seed=S), with Range,
// If-Range, HEAD, Content-Length and a strong ETag, generating them on the fly.
func serveBlob(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || size < 0 || size > maxBlob {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "size must be an integer in 0..2^40"})
		return
	}
	var seed uint64
	if v := q.Get("seed"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "seed must be an unsigned integer"})
			return
		}
	}
	serveGenerated(w, r, "application/octet-stream", seed, size)
}

// serveGenerated serves a generated blob through http.ServeContent, which implements
// Range (206, multipart/byteranges, 416), If-Range, conditional GETs and HEAD.
func serveGenerated(w http.ResponseWriter, r *http.Request, contentType string, seed uint64, size int64) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("ETag", blobETag(seed, size))
	h.Set("Accept-Ranges", "bytes")
	http.ServeContent(w, r, "", blobModTime, NewBlobReader(seed, size))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
