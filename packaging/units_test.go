package packaging

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// readUnit returns a systemd unit's directives, section.Key → values in order.
func readUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not Key=Value", path, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitsAreHardened checks the hardening the units promise, directive by
// directive (scripts/test-packaging also has systemd-analyze rate them).
func TestUnitsAreHardened(t *testing.T) {
	common := map[string]string{
		"Service.User":                    "cmg",
		"Service.Group":                   "cmg",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		"Service.StateDirectory":          "cmg",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.KillSignal":              "SIGTERM",
		"Service.SystemCallArchitectures": "native",
		"Service.RestrictNamespaces":      "yes",
		"Service.MemoryDenyWriteExecute":  "yes",
		"Install.WantedBy":                "multi-user.target",
	}
	tests := []struct {
		unit   string
		config string
		want   map[string]string
	}{
		{"systemd/cmg-gateway.service", "/etc/cmg/gateway.yaml", map[string]string{
			"Service.CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
			"Service.AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		}},
		{"systemd/cmg-connector.service", "/etc/cmg/connector.yaml", map[string]string{
			"Service.CapabilityBoundingSet": "",
			"Service.AmbientCapabilities":   "",
			"Service.PrivateUsers":          "yes",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			u := readUnit(t, tt.unit)
			for k, v := range common {
				tt.want[k] = v
			}
			for k, want := range tt.want {
				got, ok := u[k]
				if !ok {
					t.Errorf("%s is not set, want %q", k, want)
					continue
				}
				if got[len(got)-1] != want {
					t.Errorf("%s: got %q, want %q", k, got[len(got)-1], want)
				}
			}
			filters := strings.Join(u["Service.SystemCallFilter"], " ")
			for _, want := range []string{"@system-service", "~@privileged"} {
				if !strings.Contains(filters, want) {
					t.Errorf("SystemCallFilter %q lacks %s", filters, want)
				}
			}
			exec := u["Service.ExecStart"]
			if len(exec) != 1 || !strings.HasSuffix(exec[0], "-config "+tt.config) || !strings.HasPrefix(exec[0], "/usr/bin/cmg ") {
				t.Errorf("ExecStart: got %q, want /usr/bin/cmg ... -config %s", exec, tt.config)
			}
		})
	}
}
