package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/tunnel"
)

const (
	unservedRoleID = "72057594037927945" // allowed, but no connector publishes it
	deadRoleID     = "72057594037927946" // published, but the role is down
)

func TestErrorContract(t *testing.T) {
	e := newEnv(t, envOptions{
		gateway: func(_ int, c *gateway.Config) {
			c.Sites[0].Roles = append(c.Sites[0].Roles,
				gateway.RoleConfig{ID: unservedRoleID, Kind: tunnel.ManagementPoint},
				gateway.RoleConfig{ID: deadRoleID, Kind: tunnel.ManagementPoint})
		},
		connector: func(_ int, c *connector.Config) {
			c.Roles[0].Timeout = 500 * time.Millisecond
			c.Roles = append(c.Roles, connector.RoleConfig{ID: deadRoleID, Kind: tunnel.ManagementPoint,
				URL: "http://127.0.0.1:1/mp", Auth: []string{tunnel.AuthMutual}, Timeout: time.Second})
		},
	})
	base := e.m.Gateways[0].ClientURL
	tests := []struct {
		name   string
		path   string
		args   []string
		status int
		reason string
	}{
		{"prefix outside the allow-list", "/CCM_Proxy_MutualAuth/12345/SMS_MP/.sms_aut?MPLIST", nil, 404, "RouteNotFound"},
		{"not a role prefix", "/somewhere/else", nil, 404, "RouteNotFound"},
		{"allowed prefix with no live connector", "/CCM_Proxy_MutualAuth/" + unservedRoleID + "/x", nil, 503, "ConnectorUnavailable"},
		{"role down", "/CCM_Proxy_MutualAuth/" + deadRoleID + "/x", nil, 502, "BackendUnavailable"},
		{"role too slow", mpPrefix + "/cmg-echo?cmg-delay=5s", nil, 504, "BackendTimeout"},
		{"method outside the list", mpPrefix + "/x", []string{"-X", "DELETE"}, 405, "MethodNotAllowed"},
		{"ambiguous path", mpPrefix + "/a/..%2f..%2fetc", []string{"--path-as-is"}, 400, "BadRequest"},
		{"token route without a token", "/CCM_Proxy_ServerAuth/" + demo.MPRoleID + "/CCM_STS", nil, 401, "InvalidToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.curl(true, base+tt.path, tt.args...)
			if res.status != tt.status {
				t.Fatalf("got status %d (%s), want %d", res.status, res.stderr, tt.status)
			}
			if got := res.header.Get("CMG-Error"); got != tt.reason {
				t.Errorf("CMG-Error = %q, want %q", got, tt.reason)
			}
			var body map[string]string
			if err := json.Unmarshal(res.body, &body); err != nil || body["error"] != tt.reason {
				t.Errorf("body %q, want JSON with error %q", res.body, tt.reason)
			}
		})
	}
	fams := scrape(t, e.gws[0].admin)
	for _, tt := range tests {
		if got := metricValue(fams, "cmg_gateway_errors_total", "reason", tt.reason); got < 1 {
			t.Errorf("cmg_gateway_errors_total{reason=%q} = %v, want at least 1", tt.reason, got)
		}
	}
	if got := metricValue(fams, "cmg_gateway_requests_total", "code", "504", "role", "management_point"); got < 1 {
		t.Errorf("cmg_gateway_requests_total{code=504,role=management_point} = %v, want at least 1", got)
	}
}

func TestServiceMetadataIsAnsweredByTheGateway(t *testing.T) {
	e := newEnv(t, envOptions{connectors: 1})
	res := e.curl(true, e.m.Gateways[0].ClientURL+"/CCM_Proxy_MutualAuth/ServiceMetadata")
	if res.status != http.StatusOK {
		t.Fatalf("got %d, want 200", res.status)
	}
	var md struct {
		AuthMethod string `json:"auth_method"`
		Device     string `json:"device"`
		Chain      []struct {
			Subject string `json:"subject"`
		} `json:"certificate_chain"`
	}
	if err := json.Unmarshal(res.body, &md); err != nil {
		t.Fatal(err)
	}
	if md.AuthMethod != "certificate" || md.Device != demo.DeviceName || len(md.Chain) < 2 {
		t.Errorf("metadata = %+v, want the device's certificate identity and chain", md)
	}
}
