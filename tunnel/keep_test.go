package tunnel

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// exchange sends a keep-alive request on st (the test connector's net/http
// server serves a stream's requests in turn) and returns the answer's body.
func exchange(t *testing.T, st *yamux.Stream, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://cmg"+path, nil)
	if err := req.Write(st); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestKeptStreams(t *testing.T) {
	p := newTestPKI(t, "cp1")
	var clock atomic.Int64 // seconds past a fixed start
	start := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return start.Add(time.Duration(clock.Load()) * time.Second) }
	g := startServerWith(t, p, func(c *ServerConfig) {
		c.Now = now
		c.PingTimeout = time.Hour // the clock jumps past KeepIdle
	})
	c := startClient(t, p, "cp1", g.port(), []Route{mpRoute})
	reg := g.srv.Registry()
	eventually(t, "a session", func() bool { return reg.Len() == 1 })
	s := reg.Sessions()[0]
	path := "/CCM_Proxy_MutualAuth/" + mpID + "/x"

	st, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, st, path)
	s.Keep(st)
	s.Release()
	if got, want := s.Kept(), 1; got != want {
		t.Fatalf("kept streams = %d, want %d", got, want)
	}
	if got := s.StreamsOpen(); got != 0 {
		t.Errorf("StreamsOpen = %d with one idle kept stream, want 0", got)
	}

	// The next request takes the kept stream.
	again, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	if again.StreamID() != st.StreamID() {
		t.Errorf("the next request opened stream %d, want the kept %d", again.StreamID(), st.StreamID())
	}
	if got, want := exchange(t, again, path), "cp1 GET "+path+" 0"; got != want {
		t.Errorf("on the kept stream: got %q, want %q", got, want)
	}
	s.Keep(again)
	s.Release()

	// Idle past KeepIdle: closed, and the next request opens a fresh one.
	clock.Add(int64(KeepIdle/time.Second) + 1)
	fresh, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.StreamID() == st.StreamID() {
		t.Errorf("a stream idle past %v was reused", KeepIdle)
	}
	if got := s.Kept(); got != 0 {
		t.Errorf("kept streams after the idle one expired = %d, want 0", got)
	}
	exchange(t, fresh, path)
	s.Keep(fresh)
	s.Release()

	// A drain closes the idle kept stream: the connector's wait for its
	// open streams ends, and nothing goes to the draining session.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.c.Drain(ctx); err != nil {
		t.Fatalf("drain with a kept stream: %v", err)
	}
	if got := s.Kept(); got != 0 {
		t.Errorf("kept streams after the drain = %d, want 0", got)
	}
	eventually(t, "the session to close", func() bool { return reg.Len() == 0 })
}
