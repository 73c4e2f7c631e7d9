package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// The responses net/http writes on its own (net/http/server.go), and what the
// device gets instead.
func TestCannedErrorBecomesTheContract(t *testing.T) {
	const hdr = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	tests := []struct {
		name   string
		canned string
		reason httperror.Reason
		detail string
	}{
		{"header too large", "HTTP/1.1 431 Request Header Fields Too Large" + hdr + "431 Request Header Fields Too Large", httperror.RequestTooLarge, "the request line or header is larger than 65536 bytes"},
		{"unknown transfer coding", "HTTP/1.1 501 Not Implemented" + hdr + "Unsupported transfer encoding", httperror.BadRequest, "unsupported or ambiguous Transfer-Encoding"},
		{"bad request with a reason", "HTTP/1.1 400 Bad Request: missing required Host header" + hdr + "400 Bad Request: missing required Host header", httperror.BadRequest, "missing required Host header"},
		{"bad request echoing input", `HTTP/1.1 400 Bad Request: malformed HTTP request "<script>"` + hdr + "x", httperror.BadRequest, "malformed HTTP request"},
		{"plain bad request", "HTTP/1.1 400 Bad Request" + hdr + "400 Bad Request", httperror.BadRequest, "malformed or ambiguous request"},
		{"version", "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + hdr + "x", httperror.BadRequest, "unsupported HTTP version"},
		{"expectation", "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 0\r\n\r\n", httperror.BadRequest, "the Expect header may only ask for 100-continue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := cannedError([]byte(tt.canned), 64<<10)
			if !ok {
				t.Fatalf("not recognized: %q", tt.canned)
			}
			if e.Reason != tt.reason || e.Detail != tt.detail {
				t.Errorf("got %s %q, want %s %q", e.Reason, e.Detail, tt.reason, tt.detail)
			}
			checkContractResponse(t, contractResponse(nil, e, "0123456789abcdef"), e)
		})
	}
}

// A response the handler wrote never matches, whatever it carries.
func TestHandlerResponsesAreNotCanned(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.Header().Set("CMG-Request-ID", "x")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "400 Bad Request")
	}))
	defer srv.Close()
	var raw bytes.Buffer
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Write(&raw)
	if _, ok := cannedError(raw.Bytes(), 64<<10); ok {
		t.Errorf("a handler's 400 was taken for net/http's own: %q", raw.Bytes())
	}
}

func checkContractResponse(t *testing.T, b []byte, e *httperror.Error) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		t.Fatalf("not an HTTP response: %v\n%q", err, b)
	}
	defer resp.Body.Close()
	if resp.StatusCode != e.Reason.Status() || resp.Header.Get(httperror.Header) != string(e.Reason) || !resp.Close {
		t.Errorf("status %d, CMG-Error %q, close %v; want %d %s and Connection: close", resp.StatusCode, resp.Header.Get(httperror.Header), resp.Close, e.Reason.Status(), e.Reason)
	}
	var body struct{ Error, Detail, RequestID string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != string(e.Reason) || !strings.Contains(string(b), "request_id") {
		t.Errorf("body: %+v, %v", body, err)
	}
}

// FuzzCannedError: whatever bytes net/http (or anything) writes, a recognized
// one becomes a well-formed contract response.
func FuzzCannedError(f *testing.F) {
	const hdr = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	f.Add([]byte("HTTP/1.1 400 Bad Request" + hdr + "400 Bad Request"))
	f.Add([]byte("HTTP/1.1 431 Request Header Fields Too Large" + hdr))
	f.Add([]byte("HTTP/1.1 400 Bad Request: invalid method \"\x00\"" + hdr))
	f.Add([]byte("HTTP/1.1 417 Expectation Failed\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nDate: x\r\nCmg-Request-Id: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := cannedError(b, 64<<10)
		if !ok {
			return
		}
		if !e.Reason.Valid() || (e.Reason != httperror.BadRequest && e.Reason != httperror.RequestTooLarge) {
			t.Fatalf("reason %q", e.Reason)
		}
		checkContractResponse(t, contractResponse(nil, e, "0123456789abcdef"), e)
	})
}

// FuzzAmbiguousPath: a path accepted by checkPath's rules has no dot segment,
// no empty segment and is UTF-8, however it was encoded.
func FuzzAmbiguousPath(f *testing.F) {
	for _, s := range []string{"/CCM_Proxy_MutualAuth/1/a", "/a/..;/b", "/a/%c0%af", "/a/./b", "/a//b", "/a/%2e%2e/b", "/a/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.NewRequest(http.MethodGet, "https://h"+target, nil)
		if err != nil || !strings.HasPrefix(r.URL.Path, "/") {
			return
		}
		if checkPath(r) != nil {
			return
		}
		for _, seg := range strings.Split(r.URL.Path[1:], "/") {
			name, _, _ := strings.Cut(seg, ";")
			if name == "." || name == ".." {
				t.Fatalf("accepted %q with a dot segment", r.URL.Path)
			}
		}
		if strings.Contains(r.URL.Path, "//") {
			t.Fatalf("accepted %q with an empty segment", r.URL.Path)
		}
	})
}
