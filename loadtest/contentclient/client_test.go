package contentclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func content(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// server serves one file as the gateway does (Range, If-Range, ETag), and can
// be told to answer other things.
type server struct {
	mu       sync.Mutex
	data     []byte
	etag     string
	status   int // when non-zero, answered instead (once)
	token    string
	requests atomic.Int32
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	data, etag, status := s.data, s.etag, s.status
	s.status = 0
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		w.Header().Set("CMG-Error", "InvalidToken")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if status != 0 {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(status)
		return
	}
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// flakyDialer cuts every connection after it has read a random number of
// bytes (a real interruption on the socket, as a mobile device sees it).
type flakyDialer struct {
	max  int
	cuts atomic.Int32
}

func (d *flakyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &flakyConn{Conn: c, left: 1000 + rand.IntN(d.max), d: d}, nil
}

type flakyConn struct {
	net.Conn
	left int
	d    *flakyDialer
}

func (c *flakyConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.d.cuts.Add(1)
		c.Conn.Close()
		return 0, errors.New("connection cut by the test")
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

func newClient(t *testing.T, dial func(context.Context, string, string) (net.Conn, error)) *Client {
	tr := &http.Transport{DialContext: dial}
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{HTTP: &http.Client{Transport: tr}, ChunkSize: 64 << 10, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}
}

func TestDownloadSurvivesInterruptions(t *testing.T) {
	data := content(3<<20 + 12345)
	sum := sha256.Sum256(data)
	s := &server{data: data, etag: `"v1"`, token: "tok"}
	srv := httptest.NewServer(s)
	defer srv.Close()
	d := &flakyDialer{max: 200 << 10}
	c := newClient(t, d.DialContext)
	c.MaxFailures = 20

	j := &Job{URL: srv.URL + "/f", Token: "tok"}
	h := sha256.New()
	// Interrupted by the caller after a while, then resumed.
	ctx, cancel := context.WithCancel(context.Background())
	var w writerFunc = func(p []byte) (int, error) {
		n, _ := h.Write(p)
		if j.Done > 1<<20 {
			cancel()
		}
		return n, nil
	}
	if err := c.Download(ctx, j, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want context.Canceled", err)
	}
	if j.Done == 0 || j.Done >= j.Size {
		t.Fatalf("after the interruption Done = %d of %d, want part of it", j.Done, j.Size)
	}
	if err := c.Download(context.Background(), j, h); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, sum[:]) || j.Done != int64(len(data)) {
		t.Fatalf("reassembled %d bytes with another hash, want the %d of the file", j.Done, len(data))
	}
	if d.cuts.Load() == 0 || j.Failures == 0 {
		t.Errorf("the network never cut a request (cuts %d, failures %d): the test proves nothing", d.cuts.Load(), j.Failures)
	}
	if j.Requests < int(j.Size/c.ChunkSize) {
		t.Errorf("%d requests for %d bytes in %d-byte ranges", j.Requests, j.Size, c.ChunkSize)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestDownloadOutcomes(t *testing.T) {
	data := content(300_000)
	for _, tc := range []struct {
		name   string
		token  string
		status int
		change bool
		check  func(t *testing.T, err error, s *server)
	}{
		{"retries a 503", "tok", http.StatusServiceUnavailable, false, func(t *testing.T, err error, s *server) {
			if err != nil {
				t.Errorf("got %v, want success after the retry", err)
			}
		}},
		{"refused token", "bad", 0, false, func(t *testing.T, err error, s *server) {
			var se *StatusError
			if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Reason != "InvalidToken" {
				t.Errorf("got %v, want a 401 InvalidToken StatusError", err)
			}
			if n := s.requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1 (a refusal is not retried)", n)
			}
		}},
		{"file changed", "tok", 0, true, func(t *testing.T, err error, s *server) {
			if !errors.Is(err, ErrChanged) {
				t.Errorf("got %v, want ErrChanged", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &server{data: data, etag: `"v1"`, token: "tok", status: tc.status}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c := newClient(t, (&net.Dialer{}).DialContext)
			j := &Job{URL: srv.URL + "/f", Token: tc.token}
			h := sha256.New()
			var w writerFunc = func(p []byte) (int, error) {
				if tc.change && j.Done > 100_000 {
					s.mu.Lock()
					s.etag = `"v2"`
					s.mu.Unlock()
				}
				return h.Write(p)
			}
			err := c.Download(context.Background(), j, w)
			tc.check(t, err, s)
		})
	}
}

func TestGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	c := newClient(t, (&net.Dialer{}).DialContext)
	c.MaxFailures = 3
	j := &Job{URL: srv.URL}
	err := c.Download(context.Background(), j, &bytes.Buffer{})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadGateway || j.Requests != 3 {
		t.Errorf("got %v after %d requests, want the 502 after 3", err, j.Requests)
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/1000")
	f.Add("bytes */1000")
	f.Fuzz(func(t *testing.T, s string) {
		start, size := parseContentRange(s)
		if start < -1 || size < -1 {
			t.Errorf("parseContentRange(%q) = %d, %d", s, start, size)
		}
	})
}
