package policies

import (
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// BudgetConfig is the egress_budget section of a policy file: how many bytes may
// leave the gateway instance over a sliding window, and the fractions at which it
// warns, goes critical and (optionally) stops serving.
type BudgetConfig struct {
	// Bytes is the budget for the window. Zero disables the budget.
	Bytes int64
	// Window is the sliding window (336h, 14 days, like the original product).
	Window time.Duration
	// Warning and Critical are fractions of Bytes, 0 < Warning < Critical <= 1.
	Warning  float64
	Critical float64
	// StopOnCritical refuses device requests with EgressBudgetExceeded while the
	// usage is at or above Critical.
	StopOnCritical bool
}

// The defaults of the egress_budget section (the original product's alert
// defaults: 14 days, warning at 50 %, critical at 90 %).
const (
	DefaultBudgetWindow   = 336 * time.Hour
	DefaultBudgetWarning  = 0.5
	DefaultBudgetCritical = 0.9
)

// BudgetState is where usage stands against the budget.
type BudgetState uint8

// The budget states, in increasing severity.
const (
	BudgetOK BudgetState = iota
	BudgetWarning
	BudgetCritical
)

func (s BudgetState) String() string {
	switch s {
	case BudgetWarning:
		return "warning"
	case BudgetCritical:
		return "critical"
	}
	return "ok"
}

// budgetBuckets is how many fixed buckets the window is cut into: a 14-day window
// slides in steps of an hour. Memory is constant whatever the traffic.
const budgetBuckets = 336

// EgressBudget counts the bytes that leave one gateway instance over a sliding
// window and compares them with the budget. The window slides in steps of
// Window/336: a bucket's bytes leave the window together when it expires.
//
// Each instance counts only its own bytes (it keeps no shared state), so a service
// of N instances sets the budget to its total divided by N. Usage is not kept
// across restarts. It is safe for concurrent use.
type EgressBudget struct {
	now func() time.Time

	mu      sync.Mutex // guards the fields below
	cfg     BudgetConfig
	width   time.Duration // Window / budgetBuckets
	cur     int64         // index of the current bucket: unix nanoseconds / width
	buckets [budgetBuckets]int64
	total   int64 // sum of buckets
}

// NewEgressBudget returns a tracker for cfg (a zero Bytes disables the budget but
// still counts bytes over the window, DefaultBudgetWindow when cfg has none). now
// is the clock; nil means time.Now.
func NewEgressBudget(cfg BudgetConfig, now func() time.Time) *EgressBudget {
	if now == nil {
		now = time.Now
	}
	b := &EgressBudget{now: now}
	b.cfg, b.width = normalBudget(cfg)
	b.cur = b.index(now())
	return b
}

func normalBudget(cfg BudgetConfig) (BudgetConfig, time.Duration) {
	if cfg.Window <= 0 {
		cfg.Window = DefaultBudgetWindow
	}
	width := cfg.Window / budgetBuckets
	if width <= 0 {
		width = 1
	}
	return cfg, width
}

func (b *EgressBudget) index(t time.Time) int64 { return t.UnixNano() / int64(b.width) }

// advance moves the window to t, emptying the buckets that left it. A clock that
// goes backwards keeps the current bucket.
func (b *EgressBudget) advance(t time.Time) {
	idx := b.index(t)
	if idx <= b.cur {
		return
	}
	if idx-b.cur >= budgetBuckets {
		b.buckets = [budgetBuckets]int64{}
		b.total = 0
	} else {
		for i := b.cur + 1; i <= idx; i++ {
			slot := i % budgetBuckets
			b.total -= b.buckets[slot]
			b.buckets[slot] = 0
		}
	}
	b.cur = idx
}

// Add counts n bytes that left the gateway now.
func (b *EgressBudget) Add(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.advance(b.now())
	b.buckets[b.cur%budgetBuckets] += n
	b.total += n
	b.mu.Unlock()
}

// Used returns the bytes counted within the window.
func (b *EgressBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(b.now())
	return b.total
}

// Config returns the budget in force.
func (b *EgressBudget) Config() BudgetConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// UsedRatio returns the used fraction of the budget (it may exceed 1), or 0 when
// the budget is disabled: the value of cmg_cost_egress_budget_used_ratio.
func (b *EgressBudget) UsedRatio() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ratio()
}

func (b *EgressBudget) ratio() float64 {
	if b.cfg.Bytes <= 0 {
		return 0
	}
	b.advance(b.now())
	return float64(b.total) / float64(b.cfg.Bytes)
}

// State returns where usage stands against the warning and critical fractions.
func (b *EgressBudget) State() BudgetState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state()
}

func (b *EgressBudget) state() BudgetState {
	if b.cfg.Bytes <= 0 {
		return BudgetOK
	}
	switch r := b.ratio(); {
	case r >= b.cfg.Critical:
		return BudgetCritical
	case r >= b.cfg.Warning:
		return BudgetWarning
	}
	return BudgetOK
}

// Stopped reports whether the gateway must stop serving devices: the budget says
// stop_on_critical and usage is critical. Serving resumes by itself once enough
// bytes have left the window.
func (b *EgressBudget) Stopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg.StopOnCritical && b.state() == BudgetCritical
}

// Check returns an EgressBudgetExceeded error when the gateway must stop serving,
// and nil otherwise.
func (b *EgressBudget) Check() error {
	if !b.Stopped() {
		return nil
	}
	return httperror.New(httperror.EgressBudgetExceeded, "the gateway's egress budget is used up; the service resumes as the budget window moves on")
}

// SetConfig puts a new budget in force (on a policy reload) and keeps the bytes
// counted so far. When the window changes, each old bucket's bytes move to the
// new bucket that holds its start time, or leave when that is outside the new
// window.
func (b *EgressBudget) SetConfig(cfg BudgetConfig) {
	cfg, width := normalBudget(cfg)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.advance(now)
	if width == b.width {
		b.cfg = cfg
		return
	}
	old, oldWidth, oldCur := b.buckets, b.width, b.cur
	b.cfg, b.width = cfg, width
	b.buckets = [budgetBuckets]int64{}
	b.total = 0
	b.cur = b.index(now)
	for slot, n := range old {
		if n == 0 {
			continue
		}
		// The bucket index this slot holds: the one within (oldCur-N, oldCur].
		idx := oldCur - ((oldCur-int64(slot))%budgetBuckets+budgetBuckets)%budgetBuckets
		nidx := idx * int64(oldWidth) / int64(width)
		if nidx > b.cur || nidx <= b.cur-budgetBuckets {
			continue
		}
		b.buckets[nidx%budgetBuckets] += n
		b.total += n
	}
}
