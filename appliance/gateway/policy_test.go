package gateway

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/policies"
	"github.com/cmg-gateway/cmg/tunnel"
)

// BenchmarkAdmit is the policy's cost on the request path: building the
// request, deciding, counting the decision, taking and releasing the limits.
func BenchmarkAdmit(b *testing.B) {
	file := filepath.Join(b.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(`version: 1
default: deny
rules:
  - name: lab
    match: {source: 198.51.100.0/24}
    action: deny
  - name: workstations
    match:
      auth: certificate
      issuer: "CN=Contoso Issuing CA 2,*"
      subject: "CN=*,OU=Workstations,O=Contoso,C=US"
      role: management_point
    action: allow
    rate_limit: {requests_per_second: 1000000, burst: 1000000}
    concurrency: 64
`), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := policies.DefaultConfig()
	cfg.File = file
	eng, err := policies.NewEngine(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := newRequestMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	pm, err := newPolicyMetrics(reg, eng, m.reloads)
	if err != nil {
		b.Fatal(err)
	}
	g := &Gateway{m: m, pol: eng, pm: pm}
	r := httptest.NewRequest("GET", "https://gw/CCM_Proxy_MutualAuth/1/SMS_MP/.sms_aut?MPLIST", nil)
	r.RemoteAddr = "203.0.113.7:50123"
	id := &auth.Identity{Method: auth.Certificate, Device: "ws042",
		Subject: "CN=ws042,OU=Workstations,O=Contoso,C=US", Issuer: "CN=Contoso Issuing CA 2,O=Contoso,C=US"}
	role := &allowedRole{ID: "1", Kind: tunnel.ManagementPoint}
	b.ReportAllocs()
	for b.Loop() {
		x := exchange{r: r, ident: id, role: role}
		if !g.admit(&x) {
			b.Fatal("refused")
		}
		x.permit.Release()
	}
}
