package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRateLimitedHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(log *slog.Logger, c *clock)
		// want is the messages written, with their suppressed counts (0: none).
		want []string
	}{
		{"info is never limited", func(log *slog.Logger, _ *clock) {
			for i := 0; i < 5; i++ {
				log.Info("access")
			}
		}, []string{"access", "access", "access", "access", "access"}},
		{"a burst of warnings is cut after the burst", func(log *slog.Logger, _ *clock) {
			for i := 0; i < 5; i++ {
				log.Warn("role down")
			}
		}, []string{"role down", "role down"}},
		{"the next line after a pause carries the count", func(log *slog.Logger, c *clock) {
			for i := 0; i < 5; i++ {
				log.Error("role down")
			}
			c.t = c.t.Add(time.Second)
			log.Error("role down")
		}, []string{"role down", "role down", "role down suppressed=3"}},
		{"messages are limited apart", func(log *slog.Logger, _ *clock) {
			for i := 0; i < 3; i++ {
				log.Warn("a")
				log.Warn("b")
			}
		}, []string{"a", "b", "a", "b"}},
		{"derived loggers share the limit", func(log *slog.Logger, _ *clock) {
			for i := 0; i < 3; i++ {
				log.With("k", i).Warn("x")
			}
		}, []string{"x", "x"}},
		{"many formatted messages share one bucket beyond the cap", func(log *slog.Logger, _ *clock) {
			for i := 0; i < maxKeys+5; i++ {
				log.Warn(fmt.Sprintf("m%d", i))
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := &clock{t: time.Unix(1000, 0)}
			h := NewRateLimited(slog.NewJSONHandler(&buf, nil), Limit{Burst: 2, Every: time.Second}, c.now)
			tc.run(slog.New(h), c)
			got := lines(t, &buf)
			if tc.want == nil {
				if len(got) != maxKeys+2 || len(h.lim.keys) != maxKeys+1 {
					t.Errorf("got %d lines and %d keys, want %d lines and %d keys", len(got), len(h.lim.keys), maxKeys+2, maxKeys+1)
				}
				return
			}
			var gotS []string
			for _, m := range got {
				s := m["msg"].(string)
				if n, ok := m["suppressed"]; ok {
					s += fmt.Sprintf(" suppressed=%v", n)
				}
				gotS = append(gotS, s)
			}
			if strings.Join(gotS, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", gotS, tc.want)
			}
		})
	}
}

func TestNewLevel(t *testing.T) {
	for _, tc := range []struct {
		level     string
		debug, in bool
	}{
		{"debug", true, true},
		{"info", false, true},
		{"warn", false, false},
		{"nonsense", false, true},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, flush := New(&buf, tc.level)
			log.Debug("d")
			log.Info("i")
			flush()
			out := buf.String()
			if strings.Contains(out, `"msg":"d"`) != tc.debug || strings.Contains(out, `"msg":"i"`) != tc.in {
				t.Errorf("level %s wrote %q; want debug %v, info %v", tc.level, out, tc.debug, tc.in)
			}
		})
	}
}

// syncBuf is a bytes.Buffer safe for the flush timer's goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWriterBatches(t *testing.T) {
	t.Run("lines wait for the delay, then go in one write", func(t *testing.T) {
		var out syncBuf
		w := NewWriter(&out, 1024, 50*time.Millisecond)
		for i := 0; i < 10; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
		if s := out.String(); s != "" {
			t.Fatalf("written before the delay: %q", s)
		}
		deadline := time.Now().Add(5 * time.Second)
		for out.String() == "" && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // the timer is the thing under test
		}
		if got := strings.Count(out.String(), "\n"); got != 10 || out.n != 1 {
			t.Errorf("got %d lines in %d writes, want 10 in 1", got, out.n)
		}
	})
	t.Run("a full buffer is written at once", func(t *testing.T) {
		var out syncBuf
		w := NewWriter(&out, 16, time.Hour)
		fmt.Fprint(w, "0123456789\n")
		fmt.Fprint(w, "0123456789\n")
		if got := out.String(); got != "0123456789\n" {
			t.Errorf("got %q, want the first line written when the second did not fit", got)
		}
		fmt.Fprint(w, strings.Repeat("x", 40))
		if got := len(out.String()); got != 11+11+40 {
			t.Errorf("a line larger than the buffer: got %d bytes out, want %d", got, 62)
		}
	})
	t.Run("warnings flush at once", func(t *testing.T) {
		var out syncBuf
		log, _ := New(&out, "info")
		log.Info("access")
		if out.String() != "" {
			t.Fatalf("info written at once: %q", out.String())
		}
		log.Warn("role down")
		if got := out.String(); !strings.Contains(got, `"msg":"access"`) || !strings.Contains(got, `"msg":"role down"`) {
			t.Errorf("after a warning: got %q, want both lines", got)
		}
	})
}
