package cost

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestNewRefusesBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Prices.Currency = "dollars"
	cfg.SaveInterval = 0
	_, err := New(cfg, Options{})
	var ps *configfile.Problems
	if !errors.As(err, &ps) || len(ps.List) != 2 {
		t.Errorf("got %v, want two problems", err)
	}
}

func TestNewRefusesBadKey(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.KeyFile = filepath.Join(dir, "short.key")
	if err := os.WriteFile(cfg.KeyFile, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{}); err == nil {
		t.Errorf("got no error, want one for a 5-byte key")
	}
}

func TestMeterRunSavesAndNewRestores(t *testing.T) {
	dir := t.TempDir()
	c := newFakeClock()
	cfg := DefaultConfig()
	cfg.StateFile = filepath.Join(dir, "devices.state")
	m, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The key is created beside the state file. Three devices under a random
	// key: the sparse sketch counts them exactly unless two of 2^25 positions
	// collide (odds about 1 in 10^7).
	if _, err := os.Stat(cfg.StateFile + ".key"); err != nil {
		t.Errorf("the key beside the state file: %v", err)
	}
	for _, id := range []string{"a", "b", "c"} {
		m.ObserveDevice(id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	again, err := New(cfg, Options{Now: c.Now})
	if err != nil {
		t.Fatalf("New after a restart: %v", err)
	}
	if got := again.Devices().ActiveIn("24h"); got != 3 {
		t.Errorf("after a restart: got %d devices, want 3", got)
	}
}

func TestNewSurvivesCorruptState(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.StateFile = filepath.Join(dir, "devices.state")
	if err := os.WriteFile(cfg.StateFile, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New: got %v, want a warning only", err)
	}
	if !strings.Contains(logs.String(), "start from zero") {
		t.Errorf("logs: got %q, want a warning", logs.String())
	}
	if err := m.Save(); err != nil {
		t.Errorf("Save over the corrupt file: %v", err)
	}
}

func TestSaveWithoutStateFile(t *testing.T) {
	m, err := New(DefaultConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(); err != nil {
		t.Errorf("Save with no state file: got %v, want nil", err)
	}
}
