package policies

import (
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

func TestBudgetStates(t *testing.T) {
	clk := newFakeClock()
	cfg := BudgetConfig{Bytes: 1000, Window: 336 * time.Hour, Warning: 0.5, Critical: 0.9, StopOnCritical: true}
	b := NewEgressBudget(cfg, clk.Now)
	steps := []struct {
		add     int64
		ratio   float64
		state   BudgetState
		stopped bool
	}{
		{0, 0, BudgetOK, false},
		{499, 0.499, BudgetOK, false},
		{1, 0.5, BudgetWarning, false},
		{399, 0.899, BudgetWarning, false},
		{1, 0.9, BudgetCritical, true},
		{600, 1.5, BudgetCritical, true},
		{-5, 1.5, BudgetCritical, true}, // negative adds are ignored
	}
	for i, s := range steps {
		b.Add(s.add)
		if r := b.UsedRatio(); r != s.ratio {
			t.Errorf("step %d: ratio %v, want %v", i, r, s.ratio)
		}
		if st := b.State(); st != s.state {
			t.Errorf("step %d: state %s, want %s", i, st, s.state)
		}
		if got := b.Stopped(); got != s.stopped {
			t.Errorf("step %d: stopped %v, want %v", i, got, s.stopped)
		}
		err := b.Check()
		if r, _ := httperror.ReasonOf(err); s.stopped != (r == httperror.EgressBudgetExceeded) {
			t.Errorf("step %d: Check() = %v, want EgressBudgetExceeded %v", i, err, s.stopped)
		}
	}
	cfg.StopOnCritical = false
	b.SetConfig(cfg)
	if b.Stopped() || b.State() != BudgetCritical {
		t.Errorf("without stop_on_critical: stopped %v state %s, want false critical", b.Stopped(), b.State())
	}
}

func TestBudgetSlidingWindow(t *testing.T) {
	clk := newFakeClock()
	// A 14-day window slides in steps of an hour.
	b := NewEgressBudget(BudgetConfig{Bytes: 1 << 30, Window: 336 * time.Hour, Warning: 0.5, Critical: 0.9}, clk.Now)
	clk.Advance(time.Hour - clk.Now().Sub(clk.Now().Truncate(time.Hour)) + time.Minute) // 1 minute into an hour
	b.Add(100)
	clk.Advance(24 * time.Hour)
	b.Add(20)
	if got := b.Used(); got != 120 {
		t.Errorf("used %d, want 120", got)
	}
	clk.Advance(311*time.Hour + 58*time.Minute) // 335 h 58 min after the first add: still in the window
	if got := b.Used(); got != 120 {
		t.Errorf("just inside the window: used %d, want 120", got)
	}
	clk.Advance(2 * time.Minute) // the first add's hour has left the window
	if got := b.Used(); got != 20 {
		t.Errorf("after the first hour left: used %d, want 20", got)
	}
	clk.Advance(24 * time.Hour)
	if got := b.Used(); got != 0 {
		t.Errorf("after everything left: used %d, want 0", got)
	}
	b.Add(7)
	clk.Advance(10000 * time.Hour) // a jump far past the window
	if got := b.Used(); got != 0 {
		t.Errorf("after a long jump: used %d, want 0", got)
	}
	b.Add(5)
	clk.Advance(-3 * time.Hour) // a clock that goes back keeps counting
	b.Add(5)
	if got := b.Used(); got != 10 {
		t.Errorf("after the clock went back: used %d, want 10", got)
	}
}

func TestBudgetDisabled(t *testing.T) {
	b := NewEgressBudget(BudgetConfig{}, nil)
	b.Add(1 << 40)
	if b.UsedRatio() != 0 || b.State() != BudgetOK || b.Stopped() || b.Check() != nil {
		t.Errorf("disabled budget: ratio %v state %s stopped %v", b.UsedRatio(), b.State(), b.Stopped())
	}
	if got := b.Used(); got != 1<<40 {
		t.Errorf("a disabled budget still counts: used %d, want %d", got, int64(1<<40))
	}
	if got := b.Config().Window; got != DefaultBudgetWindow {
		t.Errorf("window %v, want the default %v", got, DefaultBudgetWindow)
	}
}

// TestBudgetSetConfigKeepsUsage: a reload keeps what was counted; a new window
// keeps what falls inside it.
func TestBudgetSetConfigKeepsUsage(t *testing.T) {
	clk := newFakeClock()
	cfg := BudgetConfig{Bytes: 1000, Window: 336 * time.Hour, Warning: 0.5, Critical: 0.9}
	b := NewEgressBudget(cfg, clk.Now)
	b.Add(100) // day 0
	clk.Advance(5 * 24 * time.Hour)
	b.Add(10) // day 5
	clk.Advance(5 * 24 * time.Hour)
	b.Add(1) // day 10

	cfg.Bytes = 2000
	b.SetConfig(cfg)
	if got, r := b.Used(), b.UsedRatio(); got != 111 || r != 111.0/2000 {
		t.Errorf("same window: used %d ratio %v, want 111 and %v", got, r, 111.0/2000)
	}
	cfg.Window = 7 * 24 * time.Hour // keeps days 5 and 10
	b.SetConfig(cfg)
	if got := b.Used(); got != 11 {
		t.Errorf("7-day window: used %d, want 11", got)
	}
	clk.Advance(2*24*time.Hour + time.Hour) // day 12: day 5 has left
	if got := b.Used(); got != 1 {
		t.Errorf("7-day window on day 12: used %d, want 1", got)
	}
	cfg.Window = 30 * 24 * time.Hour // a longer window cannot bring back what was dropped
	b.SetConfig(cfg)
	b.Add(2)
	if got := b.Used(); got != 3 {
		t.Errorf("30-day window: used %d, want 3", got)
	}
}

func TestBudgetStateString(t *testing.T) {
	for s, want := range map[BudgetState]string{BudgetOK: "ok", BudgetWarning: "warning", BudgetCritical: "critical"} {
		if s.String() != want {
			t.Errorf("got %q, want %q", s.String(), want)
		}
	}
}
