package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/cmg-gateway/cmg/appliance/auth"
)

// serviceMetadata answers /CCM_Proxy_*/ServiceMetadata itself: a diagnostic of
// the identity the gateway saw, never forwarded.
func (g *Gateway) serviceMetadata(x *exchange, mode auth.Mode) {
	type certInfo struct {
		Subject   string    `json:"subject"`
		Issuer    string    `json:"issuer"`
		Serial    string    `json:"serial"`
		NotBefore time.Time `json:"not_before"`
		NotAfter  time.Time `json:"not_after"`
	}
	out := struct {
		Service    string         `json:"service"`
		Instance   int            `json:"instance"`
		Prefix     string         `json:"prefix"`
		AuthMethod string         `json:"auth_method"`
		Device     string         `json:"device"`
		Subject    string         `json:"subject,omitempty"`
		Issuer     string         `json:"issuer,omitempty"`
		Tenant     string         `json:"tenant,omitempty"`
		Expires    time.Time      `json:"expires,omitzero"`
		Chain      []certInfo     `json:"certificate_chain,omitempty"`
		Claims     map[string]any `json:"token_claims,omitempty"`
		RequestID  string         `json:"request_id"`
		TLSVersion string         `json:"tls_version,omitempty"`
	}{
		Service:    g.cfg.ServiceName,
		Instance:   g.cfg.Instance,
		Prefix:     mode.String(),
		AuthMethod: string(x.ident.Method),
		Device:     x.ident.Device,
		Subject:    x.ident.Subject,
		Issuer:     x.ident.Issuer,
		Tenant:     x.ident.Tenant,
		Expires:    x.ident.Expires,
		Claims:     x.ident.Claims,
		RequestID:  x.id,
	}
	for _, c := range x.ident.Chain {
		out.Chain = append(out.Chain, certInfo{c.Subject.String(), c.Issuer.String(), c.SerialNumber.Text(16), c.NotBefore, c.NotAfter})
	}
	if x.r.TLS != nil {
		out.TLSVersion = tlsVersionName(x.r.TLS.Version)
	}
	w := x.w
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func tlsVersionName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLS 1.3"
	case 0x0303:
		return "TLS 1.2"
	}
	return "other"
}
