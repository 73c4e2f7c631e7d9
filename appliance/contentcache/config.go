package contentcache

import (
	"github.com/cmg-gateway/cmg/configfile"
)

// Config is the cache section of the gateway's content configuration.
type Config struct {
	// Dir is the cache directory, created if missing (mode 0750). Empty turns the
	// disk cache off: every download then streams through from the site.
	Dir string `yaml:"dir"`
	// MaxBytes bounds what the cache holds on disk, files being fetched
	// included (each file counted in whole 4 KiB blocks plus one). A file larger
	// than this streams through uncached. Default 10GiB.
	MaxBytes configfile.Size `yaml:"max_bytes"`
}

// DefaultConfig is the section's defaults: no directory (the disk cache is off
// until one is configured), 10 GiB.
func DefaultConfig() Config { return Config{MaxBytes: 10 << 30} }

// MinBytes is the smallest MaxBytes accepted.
const MinBytes = 1 << 20

// Validate reports every problem of the section.
func (c Config) Validate() error {
	var ps configfile.Problems
	if c.MaxBytes < MinBytes {
		ps.Addf("max_bytes", "must be at least 1MiB, not %d", c.MaxBytes)
	}
	return ps.Err()
}
