package roles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	c := newClient(t)
	tests := []struct {
		name string
		path string
		down Role
		want int
	}{
		{"root", "/healthz", "", http.StatusOK},
		{"management point", "/mp/healthz", "", http.StatusOK},
		{"software update point", "/sup/healthz", "", http.StatusOK},
		{"case-insensitive like IIS", "/MP/HealthZ", "", http.StatusOK},
		{"management point down", "/mp/healthz", RoleMP, http.StatusServiceUnavailable},
		{"other role down leaves SUP up", "/sup/healthz", RoleMP, http.StatusOK},
		{"software update point down", "/sup/healthz", RoleSUP, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.down != "" {
				s.SetHealthy(tt.down, false)
				defer s.SetHealthy(tt.down, true)
			}
			resp, _ := do(t, c, http.MethodGet, base+tt.path, nil, nil)
			if resp.StatusCode != tt.want {
				t.Errorf("GET %s: got %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestEchoFidelity(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	body := bytes.Repeat([]byte("0123456789"), 1000)
	tests := []struct {
		name, method, path, query string
		role                      Role
		body                      []byte
	}{
		{"CCM_POST under the MP", "CCM_POST", "/mp/cmg-echo", "", RoleMP, body},
		{"BITS_POST under the MP", "BITS_POST", "/mp/CCM_Incoming/cmg-echo", "x=1", RoleMP, body},
		{"PROPFIND under the SUP", "PROPFIND", "/sup/cmg-echo", "", RoleSUP, nil},
		{"GET at the root", "GET", "/cmg-echo", "a=b&c=%7Bd%7D", RoleOther, nil},
		{"PUT with a body", "PUT", "/sup/Content/cmg-echo", "", RoleSUP, body[:1]},
		{"HEAD answers headers only", "HEAD", "/mp/cmg-echo", "", RoleMP, nil},
		{"case-insensitive helper name", "POST", "/mp/CMG-Echo", "", RoleMP, body},
	}
	hdr := map[string]string{
		"CCMClientID":                 "GUID:8B7B6A3C-2F14-4C55-9E51-2D3F0C1A9B77",
		"CCMClientIDSignature":        "ABCDEF0123",
		"CCMClientTimestamp":          "2024-05-01T12:00:00Z",
		"CCMClientTimestampSignature": "0123ABCDEF",
		"Range":                       "bytes=0-99",
		"X-Custom":                    "kept",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := base + tt.path
			if tt.query != "" {
				url += "?" + tt.query
			}
			resp, b := do(t, c, tt.method, url, bytes.NewReader(tt.body), hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			if tt.method == http.MethodHead {
				if len(b) != 0 {
					t.Errorf("HEAD: got %d body bytes, want 0", len(b))
				}
				return
			}
			var e EchoReply
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("decoding %q: %v", b, err)
			}
			if e.Method != tt.method || e.Path != tt.path || e.RawQuery != tt.query || e.Role != tt.role {
				t.Errorf("got method %q path %q query %q role %q, want %q %q %q %q", e.Method, e.Path, e.RawQuery, e.Role, tt.method, tt.path, tt.query, tt.role)
			}
			for k, v := range hdr {
				if got := http.Header(e.Headers).Get(k); got != v {
					t.Errorf("header %s: got %q, want %q", k, got, v)
				}
			}
			if e.BodyLen != int64(len(tt.body)) || e.BodySHA256 != sha(tt.body) {
				t.Errorf("body: got %d bytes %s, want %d bytes %s", e.BodyLen, e.BodySHA256, len(tt.body), sha(tt.body))
			}
		})
	}
}

// chunkedReader hides its length so the client sends the body chunked.
type chunkedReader struct{ io.Reader }

func TestSinkStreams(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	const size = 8 << 20
	want := sha256.New()
	_, _ = io.Copy(want, NewBlobReader(7, size))
	for _, tt := range []struct {
		name   string
		body   func() io.Reader
		method string
	}{
		{"content-length", func() io.Reader { return io.LimitReader(NewBlobReader(7, size), size) }, "POST"},
		{"chunked BITS_POST", func() io.Reader { return chunkedReader{NewBlobReader(7, size)} }, "BITS_POST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+"/sup/cmg-sink", tt.body())
			if tt.name == "content-length" {
				req.ContentLength = size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got SinkReply
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.BodyLen != size || got.BodySHA256 != hex.EncodeToString(want.Sum(nil)) || got.Method != tt.method {
				t.Errorf("got %+v, want %d bytes, sha %x, method %s", got, size, want.Sum(nil), tt.method)
			}
		})
	}
}

func TestBlobReaderConsistent(t *testing.T) {
	const size = 10007
	whole := make([]byte, size)
	if _, err := io.ReadFull(NewBlobReader(42, size), whole); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1, 3, 7, 8, 13, 4096} {
		var got bytes.Buffer
		r := NewBlobReader(42, size)
		buf := make([]byte, chunk)
		if _, err := io.CopyBuffer(&got, struct{ io.Reader }{r}, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), whole) {
			t.Errorf("reading in chunks of %d: bytes differ from one read", chunk)
		}
	}
	for _, off := range []int64{0, 1, 7, 8, 9, 5000, size - 1} {
		r := NewBlobReader(42, size)
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		if !bytes.Equal(got, whole[off:]) {
			t.Errorf("after Seek(%d): bytes differ", off)
		}
	}
	other := make([]byte, 64)
	_, _ = io.ReadFull(NewBlobReader(43, 64), other)
	if bytes.Equal(other, whole[:64]) {
		t.Error("seeds 42 and 43 gave the same bytes")
	}
}

func TestBlobRanges(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	const size = 1 << 20
	whole := make([]byte, size)
	_, _ = io.ReadFull(NewBlobReader(9, size), whole)
	url := base + "/mp/cmg-blob?size=" + strconv.Itoa(size) + "&seed=9"
	etag := blobETag(9, size)
	tests := []struct {
		name      string
		method    string
		hdr       map[string]string
		wantCode  int
		wantBody  []byte
		wantRange string
	}{
		{"whole", "GET", nil, 200, whole, ""},
		{"first byte", "GET", map[string]string{"Range": "bytes=0-0"}, 206, whole[:1], "bytes 0-0/1048576"},
		{"unaligned middle", "GET", map[string]string{"Range": "bytes=13-100012"}, 206, whole[13:100013], "bytes 13-100012/1048576"},
		{"suffix", "GET", map[string]string{"Range": "bytes=-100"}, 206, whole[size-100:], "bytes 1048476-1048575/1048576"},
		{"open end", "GET", map[string]string{"Range": "bytes=1048000-"}, 206, whole[1048000:], "bytes 1048000-1048575/1048576"},
		{"unsatisfiable", "GET", map[string]string{"Range": "bytes=2000000-"}, 416, nil, "bytes */1048576"},
		{"If-Range matching ETag", "GET", map[string]string{"Range": "bytes=5-9", "If-Range": etag}, 206, whole[5:10], "bytes 5-9/1048576"},
		{"If-Range stale ETag sends all", "GET", map[string]string{"Range": "bytes=5-9", "If-Range": `"stale"`}, 200, whole, ""},
		{"If-None-Match", "GET", map[string]string{"If-None-Match": etag}, 304, nil, ""},
		{"HEAD", "HEAD", nil, 200, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, c, tt.method, url, nil, tt.hdr)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantBody != nil && !bytes.Equal(b, tt.wantBody) {
				t.Errorf("got %d bytes (sha %s), want %d bytes (sha %s)", len(b), sha(b), len(tt.wantBody), sha(tt.wantBody))
			}
			if got := resp.Header.Get("Content-Range"); got != tt.wantRange {
				t.Errorf("Content-Range: got %q, want %q", got, tt.wantRange)
			}
			if tt.method == "HEAD" && resp.ContentLength != size {
				t.Errorf("HEAD Content-Length: got %d, want %d", resp.ContentLength, size)
			}
			if tt.wantCode < 300 && resp.Header.Get("ETag") != etag {
				t.Errorf("ETag: got %q, want %q", resp.Header.Get("ETag"), etag)
			}
		})
	}
	t.Run("multiple ranges", func(t *testing.T) {
		resp, b := do(t, c, "GET", url, nil, map[string]string{"Range": "bytes=0-9,100-109"})
		mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != 206 || mt != "multipart/byteranges" {
			t.Fatalf("got %d %s, want 206 multipart/byteranges", resp.StatusCode, mt)
		}
		mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
		for _, want := range [][]byte{whole[0:10], whole[100:110]} {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(p)
			if !bytes.Equal(got, want) {
				t.Errorf("part: got %x, want %x", got, want)
			}
		}
	})
	t.Run("bad size", func(t *testing.T) {
		resp, _ := do(t, c, "GET", base+"/mp/cmg-blob?size=-1", nil, nil)
		if resp.StatusCode != 400 {
			t.Errorf("got %d, want 400", resp.StatusCode)
		}
	})
}

func TestDelayAndStatus(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDelay = time.Hour
	_, base := startServer(t, cfg)
	t.Run("client gives up before the delayed answer", func(t *testing.T) {
		c := &http.Client{Timeout: 50 * time.Millisecond, Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		_, err := c.Get(base + "/mp/SMS_MP/.sms_aut?MPLIST&cmg-delay=1h")
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("got %v, want a client timeout", err)
		}
	})
	t.Run("delay in milliseconds, then the real answer", func(t *testing.T) {
		resp, b := do(t, newClient(t), "GET", base+"/mp/cmg-echo?cmg-delay=5", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"raw_query":"cmg-delay=5"`) {
			t.Errorf("got %d %s, want 200 echo", resp.StatusCode, b)
		}
	})
	for _, tt := range []struct {
		name, q string
		want    int
	}{
		{"forced 503", "cmg-status=503", 503},
		{"forced 502 on the SUP", "cmg-status=502", 502},
		{"bad status", "cmg-status=99", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, newClient(t), "GET", base+"/sup/ClientWebService/client.asmx?"+tt.q, nil, nil)
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestDelayCapped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDelay = time.Millisecond
	_, base := startServer(t, cfg)
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(base + "/healthz?cmg-delay=1h")
	if err != nil {
		t.Fatalf("got %v, want the capped delay to answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("got %d, want 200", resp.StatusCode)
	}
}
