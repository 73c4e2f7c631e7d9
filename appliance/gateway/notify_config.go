package gateway

import (
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

// NotifyConfig is the device notification channel (DESIGN section 9), the
// `notifications` section of gateway.yaml.
type NotifyConfig struct {
	// Heartbeat is how often an idle channel gets an SSE comment, so that idle
	// proxies and load balancers do not cut it (Azure's cut is 4 minutes). It is
	// also how often the gateway checks that the device is still there.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// WriteTimeout: a write to a device that makes no progress for this long
	// closes its channel (the device resumes with Last-Event-ID).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ReplayTimeout bounds fetching what a resuming device missed from the
	// connectors of its site.
	ReplayTimeout time.Duration `yaml:"replay_timeout"`
	// Writers is the number of goroutines that write events and heartbeats to
	// the channels (idle channels have no goroutine of their own).
	Writers int `yaml:"writers"`
	// QueueLimit is the most events waiting for one device; a device further
	// behind is cut and resumes from the connectors' buffer.
	QueueLimit int `yaml:"queue_limit"`
}

// DefaultNotifyConfig returns the defaults.
func DefaultNotifyConfig() NotifyConfig {
	return NotifyConfig{
		Heartbeat:     25 * time.Second,
		WriteTimeout:  10 * time.Second,
		ReplayTimeout: 5 * time.Second,
		Writers:       32,
		QueueLimit:    64,
	}
}

// Validate reports every problem of the section.
func (c NotifyConfig) Validate() error {
	var ps configfile.Problems
	if c.Heartbeat < 100*time.Millisecond || c.Heartbeat > 4*time.Minute {
		ps.Addf("heartbeat", "must be 100ms to 4m (under the load balancers' idle cut), not %v", c.Heartbeat)
	}
	if c.WriteTimeout < 100*time.Millisecond {
		ps.Addf("write_timeout", "must be at least 100ms")
	}
	if c.ReplayTimeout < 100*time.Millisecond {
		ps.Addf("replay_timeout", "must be at least 100ms")
	}
	if c.Writers < 1 || c.Writers > 1024 {
		ps.Addf("writers", "must be 1 to 1024, not %d", c.Writers)
	}
	if c.QueueLimit < 1 || c.QueueLimit > 4096 {
		ps.Addf("queue_limit", "must be 1 to 4096, not %d", c.QueueLimit)
	}
	return ps.Err()
}
