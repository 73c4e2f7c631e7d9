package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/appliance/gateway"
)

func TestInstanceFromHostname(t *testing.T) {
	tests := []struct {
		name      string
		hostname  string
		instances int
		want      int
		wantErr   string
	}{
		{"first pod", "cmg-gateway-0", 16, 0, ""},
		{"last of sixteen", "prod-cmg-gateway-15", 16, 15, ""},
		{"one instance", "gw-0", 1, 0, ""},
		{"ordinal too large", "cmg-gateway-2", 2, 0, "gives instance 2, but instances is 2"},
		{"no ordinal", "cmg-gateway", 16, 0, "does not end in -N"},
		{"trailing dash", "cmg-gateway-", 16, 0, "does not end in -N"},
		{"not a number", "cmg-gateway-a1", 16, 0, "does not end in -N"},
		{"leading zero", "cmg-gateway-01", 16, 0, "does not end in -N"},
		{"plus sign", "cmg-gateway-+1", 16, 0, "does not end in -N"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := gateway.DefaultConfig()
			cfg.Instances = tt.instances
			cfg.Instance = 0
			err := instanceFromHostname(&cfg, tt.hostname)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if cfg.Instance != tt.want {
				t.Errorf("got instance %d, want %d", cfg.Instance, tt.want)
			}
			if got, want := cfg.TunnelListen(), ":"+strconv.Itoa(10140+tt.want); got != want {
				t.Errorf("got tunnel listen %q, want %q", got, want)
			}
		})
	}
}
