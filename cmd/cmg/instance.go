package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cmg-gateway/cmg/appliance/gateway"
)

// instanceFromHostname sets cfg.Instance from the trailing "-N" of the host name:
// a Kubernetes StatefulSet names its pods <name>-0, <name>-1, ..., so one
// ConfigMap serves every gateway instance and each pod learns its index from its
// ordinal (`cmg gateway -instance-from-hostname`). The ordinal must be below
// cfg.Instances. The tunnel port follows (10140+instance) unless tunnel.listen
// names one.
func instanceFromHostname(cfg *gateway.Config, hostname string) error {
	i := strings.LastIndexByte(hostname, '-')
	if i < 0 || i == len(hostname)-1 {
		return fmt.Errorf("-instance-from-hostname: host name %q does not end in -N", hostname)
	}
	digits := hostname[i+1:]
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || strconv.Itoa(n) != digits {
		return fmt.Errorf("-instance-from-hostname: host name %q does not end in -N", hostname)
	}
	if n >= cfg.Instances {
		return fmt.Errorf("-instance-from-hostname: host name %q gives instance %d, but instances is %d", hostname, n, cfg.Instances)
	}
	cfg.Instance = n
	return nil
}

// instanceFromHostnameOS is instanceFromHostname with this machine's host name.
func instanceFromHostnameOS(cfg *gateway.Config) error {
	h, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("-instance-from-hostname: %w", err)
	}
	return instanceFromHostname(cfg, h)
}
