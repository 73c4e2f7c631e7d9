package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
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
			log := New(&buf, tc.level)
			log.Debug("d")
			log.Info("i")
			out := buf.String()
			if strings.Contains(out, `"msg":"d"`) != tc.debug || strings.Contains(out, `"msg":"i"`) != tc.in {
				t.Errorf("level %s wrote %q; want debug %v, info %v", tc.level, out, tc.debug, tc.in)
			}
		})
	}
}
