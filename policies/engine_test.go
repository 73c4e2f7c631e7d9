package policies

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
)

const enginePolicy = `version: 1
default: deny
rules:
  - name: mp
    match: {auth: certificate, role: management_point}
    action: allow
    rate_limit: {requests_per_second: 1, burst: 2}
    concurrency: 5
    body_limit: 1KiB
egress_budget: {bytes: 1000, stop_on_critical: true}
`

func writePolicy(t *testing.T, dir, name, src string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestEngine(t *testing.T, src string, clk *fakeClock) (*Engine, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.File = writePolicy(t, t.TempDir(), "policy.yaml", src)
	e, err := NewEngine(cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return e, cfg.File
}

func reasonOf(err error) httperror.Reason {
	r, _ := httperror.ReasonOf(err)
	return r
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := Config{MaxTrackedDevices: 3, IdleTimeout: time.Millisecond}.Validate()
	var ps *configfile.Problems
	if !errors.As(err, &ps) || len(ps.List) != 2 {
		t.Fatalf("got %v, want two problems", err)
	}
	if ps.List[0].Path != "max_tracked_devices" || ps.List[1].Path != "idle_timeout" {
		t.Errorf("problems at %q and %q, want max_tracked_devices and idle_timeout", ps.List[0].Path, ps.List[1].Path)
	}
	if _, err := NewEngine(Config{}, nil); err == nil {
		t.Error("NewEngine accepted a zero Config")
	}
}

func TestConfigDecodes(t *testing.T) {
	cfg := DefaultConfig()
	err := configfile.Decode("gw.yaml", []byte("file: /etc/cmg/policy.yaml\nidle_timeout: 90s\n"), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{File: "/etc/cmg/policy.yaml", MaxTrackedDevices: 100000, IdleTimeout: 90 * time.Second}
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

func TestEngineWithoutFileAllowsAll(t *testing.T) {
	e, err := NewEngine(DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, p, err := e.Admit(&Request{AuthMethod: AuthOIDC, Device: "x"})
	if err != nil || d.Rule != DefaultRule || d.Action != Allow {
		t.Errorf("got %+v, %v; want the default allow", d, err)
	}
	p.Release()
	if e.Policy().Name() != "" {
		t.Errorf("policy name %q, want the built-in", e.Policy().Name())
	}
}

func TestEngineBadFile(t *testing.T) {
	cfg := DefaultConfig()
	cfg.File = writePolicy(t, t.TempDir(), "p.yaml", "version: 1\ndefault: nope\nrules: 3\n")
	_, err := NewEngine(cfg, nil)
	var ps *configfile.Problems
	if !errors.As(err, &ps) || len(ps.List) != 2 {
		t.Errorf("got %v, want both problems", err)
	}
}

func TestEngineAdmit(t *testing.T) {
	clk := newFakeClock()
	e, _ := newTestEngine(t, enginePolicy, clk)
	mp := &Request{AuthMethod: AuthCertificate, RoleKind: RoleManagementPoint, Device: "ws1"}

	_, _, err := e.Admit(&Request{AuthMethod: AuthOIDC, RoleKind: RoleManagementPoint, Device: "ws1"})
	if reasonOf(err) != httperror.PolicyDenied || !strings.Contains(err.Error(), "denied by the policy's default action") {
		t.Errorf("unmatched request: got %v, want PolicyDenied by the default", err)
	}
	for i := range 2 {
		d, p, err := e.Admit(mp)
		if err != nil || d.Rule != "mp" || d.BodyBytes != 1024 {
			t.Fatalf("request %d: got %+v, %v", i, d, err)
		}
		p.Release()
	}
	_, _, err = e.Admit(mp)
	if reasonOf(err) != httperror.RateLimited {
		t.Errorf("third request at once: got %v, want RateLimited", err)
	}
	clk.Advance(time.Second)
	e.Budget().Add(900)
	d, _, err := e.Admit(mp)
	if reasonOf(err) != httperror.EgressBudgetExceeded || d.Rule != "mp" {
		t.Errorf("budget critical: got %+v, %v; want EgressBudgetExceeded with the decision", d, err)
	}
	if r := e.Budget().UsedRatio(); r != 0.9 {
		t.Errorf("used ratio %v, want 0.9", r)
	}
}

func TestEngineReload(t *testing.T) {
	clk := newFakeClock()
	e, path := newTestEngine(t, enginePolicy, clk)
	mp := &Request{AuthMethod: AuthCertificate, RoleKind: RoleManagementPoint, Device: "ws1"}
	for range 2 {
		if _, p, err := e.Admit(mp); err != nil {
			t.Fatal(err)
		} else {
			p.Release()
		}
	}
	e.Budget().Add(500)

	// A broken file is refused and the policy in force stays.
	bad := writePolicy(t, filepath.Dir(path), "bad.yaml", "version: 1\ndefault: allow\nrules:\n  - {name: x, match: {}, action: maybe}\n")
	old := e.Policy()
	err := e.Reload(bad)
	var ps *configfile.Problems
	if !errors.As(err, &ps) || !strings.Contains(err.Error(), "the previous policy stays") {
		t.Errorf("reload of a broken file: got %v", err)
	}
	if e.Policy() != old {
		t.Error("a broken file replaced the policy")
	}

	// The same file again keeps the device's spent bucket and the counted bytes.
	if err := e.Reload(path); err != nil {
		t.Fatal(err)
	}
	if e.Policy() == old {
		t.Error("reload did not install the new policy")
	}
	if _, _, err := e.Admit(mp); reasonOf(err) != httperror.RateLimited {
		t.Errorf("after reloading the same file: got %v, want the bucket still spent (RateLimited)", err)
	}
	if got := e.Budget().Used(); got != 500 {
		t.Errorf("after reload: budget used %d, want 500", got)
	}

	// A new file changes decisions at once.
	open := writePolicy(t, filepath.Dir(path), "open.yaml", "version: 1\ndefault: allow\negress_budget: {bytes: 2000}\n")
	if err := e.Reload(open); err != nil {
		t.Fatal(err)
	}
	if d, _, err := e.Admit(&Request{AuthMethod: AuthOIDC}); err != nil || d.Rule != DefaultRule {
		t.Errorf("after reloading an open policy: %+v, %v", d, err)
	}
	if r := e.Budget().UsedRatio(); r != 0.25 {
		t.Errorf("budget ratio after reload %v, want 0.25", r)
	}
	if err := e.Reload(""); err != nil || e.Budget().UsedRatio() != 0 {
		t.Errorf("reload to no policy: %v, ratio %v", err, e.Budget().UsedRatio())
	}
}

func TestEngineConcurrentReload(t *testing.T) {
	clk := newFakeClock()
	e, path := newTestEngine(t, enginePolicy, clk)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			req := &Request{AuthMethod: AuthCertificate, RoleKind: RoleManagementPoint, Device: "d", Source: netip.MustParseAddr("10.0.0.1")}
			for ctx.Err() == nil {
				if d, p, err := e.Admit(req); err == nil {
					p.Release()
				} else if d.Rule != "mp" {
					t.Errorf("decided by %q", d.Rule)
					return
				}
			}
		})
	}
	for range 20 {
		if err := e.Reload(path); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
}

func TestEngineRunStops(t *testing.T) {
	e, err := NewEngine(DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}
