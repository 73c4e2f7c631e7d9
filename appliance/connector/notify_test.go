package connector

import (
	"strings"
	"testing"
	"time"
)

func TestNotifyConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*NotifyConfig)
		key    string
	}{
		{"defaults", func(*NotifyConfig) {}, ""},
		{"no buffering is allowed", func(c *NotifyConfig) { c.BufferTTL = 0 }, ""},
		{"negative TTL", func(c *NotifyConfig) { c.BufferTTL = -time.Second }, "buffer_ttl"},
		{"no per-device events", func(c *NotifyConfig) { c.PerDevice = 0 }, "per_device"},
		{"too many broadcasts", func(c *NotifyConfig) { c.Broadcasts = 1 << 20 }, "broadcasts"},
		{"tiny buffer", func(c *NotifyConfig) { c.BufferBytes = 1024 }, "buffer_bytes"},
		{"payload over the wire bound", func(c *NotifyConfig) { c.MaxPayload = 1 << 20 }, "max_payload"},
		{"too many devices", func(c *NotifyConfig) { c.MaxDevices = 20000 }, "max_devices"},
		{"no report wait", func(c *NotifyConfig) { c.ReportTimeout = 0 }, "report_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultNotifyConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.key == "" && err != nil:
				t.Errorf("got %v, want no problem", err)
			case tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key)):
				t.Errorf("got %v, want a problem with %s", err, tc.key)
			}
		})
	}
}
