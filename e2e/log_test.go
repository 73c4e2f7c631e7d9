package e2e

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// slogLogger logs a part to a file in the test's directory; when the test fails
// the tail of each log is printed, so a failure explains itself.
type slogLogger struct {
	*slog.Logger
}

func newTestLogger(t *testing.T, name string) *slogLogger {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelInfo
	if os.Getenv("CMG_E2E_DEBUG") != "" {
		level = slog.LevelDebug
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			printTail(t, name, path, 40)
		}
	})
	return &slogLogger{slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level}))}
}

func printTail(t testing.TB, name, path string, n int) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("--- last %d lines of %s:\n%s", len(lines), name, strings.Join(lines, "\n"))
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
