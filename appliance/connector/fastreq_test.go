package connector

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestParseFastRequest(t *testing.T) {
	tests := []struct {
		name   string
		hdr    string
		ok     bool
		length int64
		lines  string
	}{
		{"GET", "GET /CCM_Proxy_MutualAuth/1/a?x=%2F HTTP/1.1\r\nHost: cmg\r\nCcmclientid: GUID:1\r\nConnection: close\r\nCmg-Request-Id: r1\r\n\r\n", true, 0, "Ccmclientid: GUID:1\r\nCmg-Request-Id: r1\r\n"},
		{"length", "CCM_POST /p/1/x HTTP/1.1\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n", true, 5, "X-A: 1\r\n"},
		{"chunked", "BITS_POST /p/1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", true, -1, ""},
		{"listed in Connection", "GET /p/1/x HTTP/1.1\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\nKeep-Alive: 5\r\n\r\n", true, 0, "X-Keep: 2\r\n"},
		{"two lengths", "POST /p/1/x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", false, 0, ""},
		{"length and chunked", "POST /p/1/x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, 0, ""},
		{"other coding", "POST /p/1/x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, 0, ""},
		{"signed length", "POST /p/1/x HTTP/1.1\r\nContent-Length: +5\r\n\r\n", false, 0, ""},
		{"folded line", "GET /p/1/x HTTP/1.1\r\nX-A: 1\r\n  more\r\n\r\n", false, 0, ""},
		{"HTTP/1.0", "GET /p/1/x HTTP/1.0\r\n\r\n", false, 0, ""},
		{"bad escape", "GET /p/1/%zz HTTP/1.1\r\n\r\n", false, 0, ""},
		{"quote in path", "GET /p/1/a\"b HTTP/1.1\r\n\r\n", false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fr fastRequest
			ok := parseFastRequest([]byte(tt.hdr), &fr)
			if ok != tt.ok {
				t.Fatalf("got ok %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if fr.length != tt.length || string(fr.lines) != tt.lines {
				t.Errorf("got length %d lines %q, want %d %q", fr.length, fr.lines, tt.length, tt.lines)
			}
		})
	}
}

// FuzzParseFastRequest checks that what the fast path takes, net/http reads
// the same way: method, target, framing; and that no hop-by-hop field is
// forwarded.
func FuzzParseFastRequest(f *testing.F) {
	for _, s := range []string{
		"GET /CCM_Proxy_MutualAuth/1/a?x=%2F HTTP/1.1\r\nHost: cmg\r\nConnection: close\r\n\r\n",
		"CCM_POST /p/1/x HTTP/1.1\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
		"BITS_POST /p/1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /p/1/x HTTP/1.1\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n",
		"GET /p/1/x HTTP/1.1\r\nContent-Length: 0\r\nTe: trailers\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i := strings.Index(s, "\r\n\r\n")
		if i < 0 {
			return
		}
		hdr := []byte(s[:i+4])
		var fr fastRequest
		if !parseFastRequest(hdr, &fr) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(hdr)))
		if err != nil {
			t.Fatalf("the fast path took %q, net/http refuses it: %v", hdr, err)
		}
		if req.Method != fr.method || req.URL.RawQuery != fr.query || req.URL.EscapedPath() != fr.path {
			t.Errorf("fast %s %s ? %s, net/http %s %s ? %s", fr.method, fr.path, fr.query, req.Method, req.URL.EscapedPath(), req.URL.RawQuery)
		}
		if fr.length != req.ContentLength {
			t.Errorf("fast length %d, net/http %d", fr.length, req.ContentLength)
		}
		for l := range strings.SplitSeq(strings.TrimSuffix(string(fr.lines), "\r\n"), "\r\n") {
			name, _, _ := strings.Cut(l, ":")
			if dropHopHeader(http.CanonicalHeaderKey(name)) || strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Host") {
				t.Errorf("forwarded %q", l)
			}
		}
	})
}
