package cost

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// Options are what New takes besides the configuration.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets state-file warnings; nil discards them.
	Logger *slog.Logger
}

// Meter is the cost model of one running gateway instance: its egress rate, its
// distinct devices and its prices. The gateway feeds it from the hot path
// (AddEgress from the wire counters of both listeners, ObserveDevice for each
// authenticated request), runs Run, and exports it with NewCollector.
type Meter struct {
	cfg     Config
	prices  atomic.Pointer[Prices]
	egress  *EgressRate
	devices *Devices
	log     *slog.Logger
}

// New checks cfg, reads (or creates) the hashing key and restores the saved
// sketches. A state file that cannot be used (corrupt, or written under another
// key) is logged and replaced at the next save: a lost count is no reason to
// keep a gateway down. A bad key file is an error.
func New(cfg Config, opts Options) (*Meter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	key, err := loadKey(cfg.keyFile())
	if err != nil {
		return nil, err
	}
	m := &Meter{cfg: cfg, egress: NewEgressRate(now), devices: NewDevices(key, now), log: log}
	p := cfg.Prices
	m.prices.Store(&p)
	if cfg.StateFile != "" {
		if err := m.devices.LoadState(cfg.StateFile); err != nil {
			log.Warn("distinct-device counts start from zero", "state_file", cfg.StateFile, "err", err)
		}
	}
	return m, nil
}

func loadKey(path string) ([]byte, error) {
	if path != "" {
		return LoadOrCreateKey(path)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	return key, nil
}

// AddEgress counts n bytes leaving the gateway (to a device or to a connector).
func (m *Meter) AddEgress(n uint64) { m.egress.Add(n) }

// ObserveDevice counts a request of the authenticated device with that
// identity.
func (m *Meter) ObserveDevice(identity string) { m.devices.Observe(identity) }

// Egress is the egress rate (for the status page and tests).
func (m *Meter) Egress() *EgressRate { return m.egress }

// Devices is the distinct-device counter (for the status page and tests).
func (m *Meter) Devices() *Devices { return m.devices }

// SetPrices replaces the prices (a configuration reload); bad prices are
// refused and the old ones stay.
func (m *Meter) SetPrices(p Prices) error {
	if err := p.Validate(); err != nil {
		return err
	}
	m.prices.Store(&p)
	return nil
}

// Prices are the prices in use.
func (m *Meter) Prices() Prices { return *m.prices.Load() }

// Snapshot is the model's figures now.
func (m *Meter) Snapshot() Snapshot {
	return Project(m.Prices(), m.egress.BytesPerSecond(), m.devices.Active())
}

// Save writes the state file now (nothing to do without one).
func (m *Meter) Save() error {
	if m.cfg.StateFile == "" {
		return nil
	}
	return m.devices.SaveState(m.cfg.StateFile)
}

// Run samples the egress rate every minute and saves the state file every
// save_interval, until ctx ends; then it saves once more and returns nil.
func (m *Meter) Run(ctx context.Context) error {
	sample := time.NewTicker(rateSampleEvery)
	defer sample.Stop()
	save := time.NewTicker(m.cfg.SaveInterval)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := m.Save(); err != nil {
				m.log.Warn("saving the distinct-device state", "err", err)
			}
			return nil
		case <-sample.C:
			m.egress.Sample()
		case <-save.C:
			if err := m.Save(); err != nil {
				m.log.Warn("saving the distinct-device state", "err", err)
			}
		}
	}
}

// Snapshot is what one instance exports about its cost (see Project).
type Snapshot struct {
	Currency string
	// PricePerGB is Prices.FlatPricePerGB.
	PricePerGB float64
	// EgressBytesPerSecond is the egress rate over the last hour.
	EgressBytesPerSecond float64
	// ProjectedMonthlyEgressBytes is that rate over 30 days.
	ProjectedMonthlyEgressBytes float64
	// EgressCost is this instance's share of the tiered egress bill
	// (Prices.InstanceEgressCost); ComputeCost is one instance's month
	// (hourly price × 720 h); TotalCost their sum.
	EgressCost, ComputeCost, TotalCost float64
	// ClientsActive are the distinct devices per window, in the order of
	// Windows.
	ClientsActive []uint64
	// PerClientMonthlyBytes is the projection over the distinct devices of
	// the last 24 h; PerClientOK is false (and the metric absent) when there
	// was none.
	PerClientMonthlyBytes float64
	PerClientOK           bool
	CapacityDevices       int
}

// Project computes an instance's figures from its prices, its egress rate over
// the last hour and its distinct devices per window (in the order of Windows).
func Project(p Prices, bytesPerSecond float64, active []uint64) Snapshot {
	projected := ProjectMonthlyEgress(bytesPerSecond)
	s := Snapshot{
		Currency:                    p.Currency,
		PricePerGB:                  p.FlatPricePerGB(),
		EgressBytesPerSecond:        bytesPerSecond,
		ProjectedMonthlyEgressBytes: projected,
		EgressCost:                  p.InstanceEgressCost(projected),
		ComputeCost:                 p.ComputeCost(1),
		ClientsActive:               active,
		CapacityDevices:             p.CapacityDevices,
	}
	s.TotalCost = s.EgressCost + s.ComputeCost
	if i := windowIndex("24h"); i < len(active) {
		s.PerClientMonthlyBytes, s.PerClientOK = PerClientMonthly(projected, active[i])
	}
	return s
}
