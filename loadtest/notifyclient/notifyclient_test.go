package notifyclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func parseAll(t *testing.T, stream, lastID string) ([]Event, *Parser) {
	t.Helper()
	p := NewParser(bufio.NewReader(strings.NewReader(stream)), lastID)
	var out []Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, p
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, ev)
	}
}

func TestParser(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []Event
		lastID string
	}{
		{"one event", "data: a\n\n", []Event{{Type: "message", Data: []byte("a")}}, ""},
		{"type and id", "id: 7\nevent: policy\ndata: {}\n\n", []Event{{ID: "7", Type: "policy", Data: []byte("{}")}}, "7"},
		{"multi-line data", "data: a\ndata: b\n\n", []Event{{Type: "message", Data: []byte("a\nb")}}, ""},
		{"CRLF and CR line ends", "data: a\r\n\r\ndata: b\r\rdata: c\n\n", []Event{
			{Type: "message", Data: []byte("a")}, {Type: "message", Data: []byte("b")}, {Type: "message", Data: []byte("c")}}, ""},
		{"comments are not events", ":\n\n: hi\ndata: x\n\n", []Event{{Type: "message", Data: []byte("x")}}, ""},
		{"id without data sets the last id only", "id: 5\n\ndata: x\n\n", []Event{{ID: "5", Type: "message", Data: []byte("x")}}, "5"},
		{"id with NUL is ignored", "id: a\x00b\ndata: x\n\n", []Event{{Type: "message", Data: []byte("x")}}, ""},
		{"no space after colon", "data:x\n\n", []Event{{Type: "message", Data: []byte("x")}}, ""},
		{"field without colon", "data\n\n", []Event{{Type: "message", Data: []byte("")}}, ""},
		{"unknown field ignored", "foo: bar\ndata: x\n\n", []Event{{Type: "message", Data: []byte("x")}}, ""},
		{"event cut by the end is dropped", "data: x\n\ndata: y\n", []Event{{Type: "message", Data: []byte("x")}}, ""},
		{"type resets after dispatch", "event: a\ndata: 1\n\ndata: 2\n\n", []Event{
			{Type: "a", Data: []byte("1")}, {Type: "message", Data: []byte("2")}}, ""},
		{"byte order mark", "\xef\xbb\xbfdata: x\n\n", []Event{{Type: "message", Data: []byte("x")}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, p := parseAll(t, tc.stream, "")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events %+v, want %+v", got, tc.want)
			}
			if p.LastEventID() != tc.lastID {
				t.Errorf("last id %q, want %q", p.LastEventID(), tc.lastID)
			}
		})
	}
}

func TestParserRetryAndComments(t *testing.T) {
	_, p := parseAll(t, "retry: 1500\n:\n:\nretry: x\n\n", "old")
	if p.Retry() != 1500*time.Millisecond {
		t.Errorf("retry %v, want 1.5s", p.Retry())
	}
	if p.Comments() != 2 {
		t.Errorf("comments %d, want 2", p.Comments())
	}
	if p.LastEventID() != "old" {
		t.Errorf("last id %q, want the carried-over %q", p.LastEventID(), "old")
	}
}

func TestParserBounds(t *testing.T) {
	p := NewParser(bufio.NewReader(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n")), "")
	p.MaxLine = 50
	if _, err := p.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v, want ErrLineTooLong", err)
	}
	p = NewParser(bufio.NewReader(strings.NewReader(strings.Repeat("data: xxxxxxxxxx\n", 10)+"\n")), "")
	p.MaxEvent = 50
	if _, err := p.Next(); !errors.Is(err, ErrEventTooLong) {
		t.Errorf("long event: %v, want ErrEventTooLong", err)
	}
}

func FuzzParser(f *testing.F) {
	for _, s := range []string{"data: a\n\n", "id: 1\r\nevent: x\r\ndata: y\r\n\r\n", ":\n", "retry: 5\r\rdata\n\n", "\xef\xbb\xbfdata:\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := NewParser(bufio.NewReader(strings.NewReader(string(b))), "")
		for i := 0; i <= len(b); i++ {
			ev, err := p.Next()
			if err != nil {
				return
			}
			if strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsRune(string(ev.Data), '\r') || strings.ContainsAny(ev.ID, "\r\n\x00") {
				t.Fatalf("event %+v carries a line end", ev)
			}
		}
		t.Fatalf("more events than input bytes")
	})
}

// sseServer is a TLS server speaking the gateway's channel: it answers
// status codes from a script, then streams the events given for each
// connection, recording every request's Last-Event-ID.
type sseServer struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	streams  [][]string
	lastIDs  []string
	conns    int
}

func newSSEServer(t *testing.T, statuses []int, streams [][]string) *sseServer {
	s := &sseServer{statuses: statuses, streams: streams}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
		i := s.conns
		s.conns++
		s.mu.Unlock()
		if r.URL.Path != Path || r.URL.RawQuery != "role=1" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if i < len(s.statuses) && s.statuses[i] != http.StatusOK {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(s.statuses[i])
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		if i < len(s.streams) {
			for _, part := range s.streams[i] {
				fmt.Fprint(w, part)
			}
		}
		w.(http.Flusher).Flush()
		// The connection then ends: the client must reconnect.
	}))
	t.Cleanup(s.Close)
	return s
}

func TestClientReconnectsAndResumes(t *testing.T) {
	srv := newSSEServer(t,
		[]int{http.StatusServiceUnavailable, http.StatusOK, http.StatusOK, http.StatusOK},
		[][]string{nil, {"id: 1\n\n", "id: 2\ndata: a\n\n", ":\n\n"}, {"id: 3\ndata: b\n\n"}, {"id: 4\n\n"}})
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	c, err := New(Config{
		URLs: []string{srv.URL}, Query: "role=1", Token: "tok", TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		OnEvent: func(ev Event) {
			mu.Lock()
			got = append(got, ev.ID+"="+string(ev.Data))
			if len(got) == 2 {
				close(done)
			}
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { _ = c.Run(ctx); close(ran) }()
	<-done
	for c.Stats().LastEventID != "4" {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-ran
	if want := []string{"2=a", "3=b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	srv.mu.Lock()
	ids := srv.lastIDs[:4]
	srv.mu.Unlock()
	if want := []string{"", "", "2", "3"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("Last-Event-ID sent %q, want %q", ids, want)
	}
	st := c.Stats()
	if st.Failures < 1 || st.Connects < 3 || st.Events != 2 || st.Heartbeats < 1 {
		t.Errorf("stats %+v: want at least 1 failure, 3 connects, exactly 2 events, a heartbeat", st)
	}
}

func TestBackoffGrowsAndIsJittered(t *testing.T) {
	c, err := New(Config{URLs: []string{"https://h"}, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, time.Second, 2 * time.Second},
		{100, time.Second, 2 * time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := c.backoff(tc.attempt)
			if d < tc.min || d > tc.max {
				t.Errorf("backoff(%d) = %v, want %v to %v", tc.attempt, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("backoff(%d) took only %d values in 50 draws: not jittered", tc.attempt, len(seen))
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no URL", Config{}},
		{"http URL", Config{URLs: []string{"http://h"}}},
		{"token with newline", Config{URLs: []string{"https://h"}, Token: "a\nb"}},
		{"max below min", Config{URLs: []string{"https://h"}, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}
