package gateway

import (
	"net/http"
)

// responseWriter records what the gateway sent to the device: the status and the
// HTTP-level bytes (an estimate of the header, the exact body).
type responseWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	headerBytes int64
	bodyBytes   int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.wroteHeader = true
		w.status = code
		w.headerBytes = responseHeaderSize(code, w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bodyBytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// responseHeaderSize estimates the status line and header as net/http writes
// them (it adds Date, and Content-Length or Transfer-Encoding).
func responseHeaderSize(code int, h http.Header) int64 {
	n := len("HTTP/1.1 200 ") + len(http.StatusText(code)) + 2
	n += len("Date: Mon, 02 Jan 2006 15:04:05 GMT") + 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	if h.Get("Content-Length") == "" {
		n += len("Transfer-Encoding: chunked") + 2
	}
	return int64(n + 2)
}
