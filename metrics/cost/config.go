package cost

import (
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

// Config is the gateway's `cost` section.
//
//	cost:
//	  prices:                   # the document `cmg cost -prices FILE` reads
//	    currency: USD
//	    egress_tiers:
//	      - {up_to_gb: 100, price_per_gb: 0}
//	      - {up_to_gb: 10000, price_per_gb: 0.087}
//	      - {price_per_gb: 0.05}
//	    instance_hourly_price: 0.091
//	    instances: 2
//	    capacity_devices: 6000
//	  state_file: /var/lib/cmg/devices.state
//	  key_file: /var/lib/cmg/device-hash.key
//	  save_interval: 5m
type Config struct {
	Prices Prices `yaml:"prices"`
	// StateFile keeps the distinct-device sketches across restarts (it holds no
	// identity; see the state file format). Empty: counts start from zero at
	// every start.
	StateFile string `yaml:"state_file"`
	// KeyFile holds the per-install secret key of the keyed hash of device
	// identities, created (32 random bytes, mode 0600) when missing. Empty: the
	// state file's path plus ".key" when there is a state file, else a random
	// key for this run only.
	KeyFile string `yaml:"key_file"`
	// SaveInterval is how often the state file is written; it is also written
	// when the gateway stops.
	SaveInterval time.Duration `yaml:"save_interval"`
}

// DefaultConfig returns the defaults: DefaultPrices, no state file, saving every
// 5 minutes when one is set.
func DefaultConfig() Config {
	return Config{Prices: DefaultPrices(), SaveInterval: 5 * time.Minute}
}

// Validate reports every problem of c at once as a *configfile.Problems.
func (c Config) Validate() error {
	var ps configfile.Problems
	ps.Merge("prices", c.Prices.Validate())
	if c.SaveInterval < 10*time.Second {
		ps.Addf("save_interval", "must be at least 10s, not %v", c.SaveInterval)
	}
	return ps.Err()
}

// keyFile is where the hashing key lives, or "" for an in-memory key.
func (c Config) keyFile() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	if c.StateFile != "" {
		return c.StateFile + ".key"
	}
	return ""
}
