package gateway

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
		{"heartbeat over the idle cut", func(c *NotifyConfig) { c.Heartbeat = 5 * time.Minute }, "heartbeat"},
		{"heartbeat too short", func(c *NotifyConfig) { c.Heartbeat = time.Millisecond }, "heartbeat"},
		{"no write timeout", func(c *NotifyConfig) { c.WriteTimeout = 0 }, "write_timeout"},
		{"no replay timeout", func(c *NotifyConfig) { c.ReplayTimeout = 0 }, "replay_timeout"},
		{"no writers", func(c *NotifyConfig) { c.Writers = 0 }, "writers"},
		{"queue too long", func(c *NotifyConfig) { c.QueueLimit = 5000 }, "queue_limit"},
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
