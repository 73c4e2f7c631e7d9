package policies

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
)

// Config is the policy section of the gateway configuration.
type Config struct {
	// File is the policy file. Empty means no policy: every authenticated, routed
	// request is allowed, without limits or egress budget.
	File string `yaml:"file"`
	// MaxTrackedDevices bounds the per-device limit state: how many (rule, device)
	// pairs are remembered at once (about 250 bytes each). Default 100000.
	MaxTrackedDevices int `yaml:"max_tracked_devices"`
	// IdleTimeout is how long a device's limit state is kept after its last
	// request (longer when its rate bucket is still refilling). Default 10m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// DefaultConfig returns the defaults: no policy file, 100000 tracked devices,
// 10 minutes idle.
func DefaultConfig() Config {
	return Config{MaxTrackedDevices: 100000, IdleTimeout: 10 * time.Minute}
}

// Validate reports every problem of the section. It does not read the file;
// NewEngine does.
func (c Config) Validate() error {
	var ps configfile.Problems
	if c.MaxTrackedDevices < limiterShards || c.MaxTrackedDevices > 10_000_000 {
		ps.Addf("max_tracked_devices", "must be between %d and 10000000, not %d", limiterShards, c.MaxTrackedDevices)
	}
	if c.IdleTimeout < time.Second {
		ps.Addf("idle_timeout", "must be at least 1s, not %s", c.IdleTimeout)
	}
	return ps.Err()
}

// Engine is the gateway's policy engine: the policy in force, replaced atomically
// on reload, and the enforcement state (per-device limits, egress budget) that
// lives across reloads. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	policy  atomic.Pointer[Policy]
	limiter *Limiter
	budget  *EgressBudget
}

// NewEngine validates cfg and loads its policy file, reporting every problem at
// once. now is the clock of the limits and the budget; nil means time.Now.
func NewEngine(cfg Config, now func() time.Time) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := loadOrAllowAll(cfg.File)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		limiter: NewLimiter(cfg.MaxTrackedDevices, cfg.IdleTimeout, now),
		budget:  NewEgressBudget(budgetOf(p), now),
	}
	e.policy.Store(p)
	return e, nil
}

func loadOrAllowAll(path string) (*Policy, error) {
	if path == "" {
		return AllowAll(), nil
	}
	return Load(path)
}

// budgetOf is the budget a policy puts in force: its section, or a disabled one.
func budgetOf(p *Policy) BudgetConfig {
	if b, ok := p.Budget(); ok {
		return b
	}
	return BudgetConfig{}
}

// Reload compiles the policy file at path ("" for no policy) and puts it in force.
// On any problem it returns them all and the policy in force stays. Limit state
// is kept: a device's counters carry over when its rule keeps its name, and adapt
// on its next request when the rule's limits changed. Counted egress carries over
// too.
func (e *Engine) Reload(path string) error {
	p, err := loadOrAllowAll(path)
	if err != nil {
		return fmt.Errorf("policy reload rejected, the previous policy stays: %w", err)
	}
	e.policy.Store(p)
	e.budget.SetConfig(budgetOf(p))
	return nil
}

// Policy returns the policy in force.
func (e *Engine) Policy() *Policy { return e.policy.Load() }

// Limiter returns the per-device limit state.
func (e *Engine) Limiter() *Limiter { return e.limiter }

// Budget returns the egress budget tracker: the gateway Adds the bytes it sends
// (to devices and to connectors) and exports UsedRatio as
// cmg_cost_egress_budget_used_ratio.
func (e *Engine) Budget() *EgressBudget { return e.budget }

// Decide decides req under the policy in force. It does not allocate.
func (e *Engine) Decide(req *Request) Decision { return e.policy.Load().Decide(req) }

// Explain decides req under the policy in force and says why.
func (e *Engine) Explain(req *Request) Trace { return e.policy.Load().Explain(req) }

// Admit decides req and enforces the decision: a deny is PolicyDenied, a stopped
// egress budget EgressBudgetExceeded, a device over its rate or in-flight limit
// RateLimited with a Retry-After (all *httperror.Error). An admitted request
// holds a Permit to Release when it ends; the decision's body limit is enforced
// by the caller with CheckContentLength and LimitBody. The decision is returned
// in every case, for the decisions metric and the access log.
func (e *Engine) Admit(req *Request) (Decision, Permit, error) {
	d := e.Decide(req)
	if d.Action != Allow {
		return d, Permit{}, httperror.New(httperror.PolicyDenied, d.Reason)
	}
	if err := e.budget.Check(); err != nil {
		return d, Permit{}, err
	}
	p, err := e.limiter.Acquire(&d, req.Device)
	return d, p, err
}

// Run drops idle limit state periodically until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(max(e.cfg.IdleTimeout/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			e.limiter.Sweep()
		}
	}
}
