package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/analyze"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/pki"
)

// TestAnalyze runs `cmg analyze` (the built binary) against the demo's gateways
// with one fault at a time; each must be named, with its fix, and exit 1.
func TestAnalyze(t *testing.T) {
	// cp2 only is allowed: cp1 is the connector "not allowed".
	e := newGatewaysOnly(t, func(_ int, c *gateway.Config) { c.Sites[0].Connectors = []string{"cp2"} })
	m := e.m

	other := pki.Dir(t.TempDir())
	if err := pki.Init(other, pki.InitOptions{Hosts: []string{"127.0.0.1"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := pki.IssueConnector(other, demo.Site, "cp2", time.Now()); err != nil {
		t.Fatal(err)
	}
	proxyAddr := freeAddr(t)
	startTinyproxy(t, proxyAddr, "cmg", "right-password", portOf(t, m.Gateways[0].TunnelHTTPS), portOf(t, m.Gateways[1].TunnelHTTPS))
	wrongPassword := filepath.Join(t.TempDir(), "proxy-password")
	if err := os.WriteFile(wrongPassword, []byte("wrong-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	type want struct {
		check, detail, fix string
	}
	cases := []struct {
		name   string
		j      int // demo connector index: 0 cp1 (not allowed), 1 cp2
		edit   func(c *connector.Config)
		code   int
		failed []want // every failing check, per instance
	}{
		{name: "all good", j: 1, code: 0},
		{
			name: "gateway certificate from an untrusted CA", j: 1,
			edit: func(c *connector.Config) { c.Gateway.CAFiles = []string{other.Path(pki.RootCert)} },
			code: 1,
			failed: []want{{"tls (tcp_tls)", "not trusted, its issuer is not among gateway.ca_files",
				`add the CA that issued the gateway's certificate ("CN=cmg dev root CA`}},
		},
		{
			name: "connector not in the allow-list", j: 0, code: 1,
			failed: []want{{"hello", "connector site1/cp1 is not in the gateway's allow-list",
				`add "cp1" to the connectors of site "site1" in the gateway configuration`}},
		},
		{
			name: "connector certificate from another CA", j: 1,
			edit: func(c *connector.Config) {
				c.TLS.CertFile, c.TLS.KeyFile = other.Path(pki.ConnectorCert("cp2")), other.Path(pki.ConnectorKey("cp2"))
			},
			code: 1,
			failed: []want{{"mtls", "the gateway rejected certificate \"CN=cp2",
				"must chain to a CA in the gateway's tunnel.connector_cas"}},
		},
		{
			name: "tunnel port blocked", j: 1,
			edit: func(c *connector.Config) { c.Gateway.TCPPortBase = portOf(t, freeAddr(t)) },
			code: 1,
			failed: []want{{"tcp_tls tcp", "connection refused",
				"allow outbound TCP to 127.0.0.1:"}},
		},
		{
			name: "proxy credentials wrong", j: 1,
			edit: func(c *connector.Config) {
				c.Gateway.Transports = []string{"https_proxy"}
				c.Gateway.Proxy = connector.ProxyConfig{URL: "http://" + proxyAddr, Username: "cmg", PasswordFile: wrongPassword}
			},
			code: 1,
			failed: []want{{"https_proxy connect", "refused the credentials (40",
				"check gateway.proxy.username and the password in gateway.proxy.password_file"}},
		},
		{
			name: "a role down", j: 1,
			edit: func(c *connector.Config) { c.Roles[1].URL = "http://" + freeAddr(t) + "/sup" },
			code: 1,
			failed: []want{{"role software_update_point " + demo.SUPRoleID, "BackendUnavailable: the role was not reached",
				"start the role, or fix its URL"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConnectorConfig(t, m, tc.j, tc.edit)
			table, _, code := runCmg(t, nil, "analyze", "-config", path)
			out, stderr, _ := runCmg(t, nil, "analyze", "-config", path, "-json")
			var rep analyze.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("analyze -json: %v\n%s\n%s", err, out, stderr)
			}
			t.Logf("cmg analyze:\n%s", table)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			var failed []analyze.Check
			for _, c := range rep.Checks {
				if c.Result == analyze.Fail {
					failed = append(failed, c)
				}
			}
			if len(failed) != len(tc.failed)*len(m.Gateways) {
				t.Errorf("%d failed checks, want %d (one per instance): %+v", len(failed), len(tc.failed)*len(m.Gateways), failed)
			}
			for _, c := range failed {
				found := false
				for _, w := range tc.failed {
					if strings.HasPrefix(c.Name, w.check) {
						found = true
						if !strings.Contains(c.Detail, w.detail) {
							t.Errorf("instance %d %s: detail %q, want it to say %q", c.Instance, c.Name, c.Detail, w.detail)
						}
						if !strings.Contains(c.Fix, w.fix) {
							t.Errorf("instance %d %s: fix %q, want it to say %q", c.Instance, c.Name, c.Fix, w.fix)
						}
					}
				}
				if !found {
					t.Errorf("unexpected failure: instance %d %s: %s", c.Instance, c.Name, c.Detail)
				}
				if !strings.Contains(table, "fix: "+c.Fix) {
					t.Errorf("the table does not print the fix for instance %d %s", c.Instance, c.Name)
				}
			}
			if tc.code == 0 {
				roles := 0
				for _, c := range rep.Checks {
					if strings.HasPrefix(c.Name, "role ") && c.Result == analyze.Pass {
						roles++
					}
				}
				if want := len(demo.ConnectorConfig(m, 1).Roles) * len(m.Gateways); roles != want {
					t.Errorf("%d role round trips passed, want %d", roles, want)
				}
			}
		})
	}
	// The analyzer never registered a session: no gateway lists a connector.
	for i, g := range e.gws {
		if st := gatewayStatus(t, g.admin); len(st.Connectors) != 0 {
			t.Errorf("gateway %d lists %d connectors after the analyzer ran, want 0", i, len(st.Connectors))
		}
	}
}
