package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/pki"
)

// The three device scenarios of the original product (original-product.md
// section 3), end to end through the demo setup with real curl as the device.

// metadata is the part of ServiceMetadata the tests read.
type metadata struct {
	AuthMethod string         `json:"auth_method"`
	Device     string         `json:"device"`
	Subject    string         `json:"subject"`
	Issuer     string         `json:"issuer"`
	Tenant     string         `json:"tenant"`
	Claims     map[string]any `json:"token_claims"`
	Chain      []struct {
		Subject string `json:"subject"`
	} `json:"certificate_chain"`
}

func decodeMetadata(t *testing.T, res curlResult) metadata {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("ServiceMetadata: got %d %s (%s), want 200", res.status, res.body, res.stderr)
	}
	var md metadata
	if err := json.Unmarshal(res.body, &md); err != nil {
		t.Fatalf("ServiceMetadata: %v: %s", err, res.body)
	}
	return md
}

// TestSiteTokenDevices: a bulk registration token from `cmg token issue`
// registers a device at the management point's CCM_STS, which answers with a
// real site device token (the demo site key, package sitetoken); the device
// then uses it on the token routes, sees its claims in ServiceMetadata, and
// renews it.
func TestSiteTokenDevices(t *testing.T) {
	e := newEnv(t, envOptions{connectors: 1})
	gw := e.m.Gateways[0].ClientURL
	const clientID = "GUID:5C2F7F1E-0A4B-4C52-9E6B-3F1D2C4B5A69"

	reg := issueSiteToken(t, e.m, "-kind", "registration")
	if res := e.curlToken(reg, gw+mpServerPrefix+"/SMS_MP/.sms_aut?MPLIST"); res.status != 403 || res.header.Get("CMG-Error") != "PolicyDenied" {
		t.Errorf("registration token outside CCM_STS: got %d %q, want 403 PolicyDenied (demo policy)", res.status, res.header.Get("CMG-Error"))
	}
	sts := func(presented string) roles.TokenReply {
		t.Helper()
		res := e.curlToken(presented, gw+mpPrefix+"/CCM_STS", "-X", "POST", "-H", "CCMClientID: "+clientID, "--data-binary", presented)
		if res.status != 200 {
			t.Fatalf("CCM_STS: got %d %s (%s), want 200", res.status, res.body, res.stderr)
		}
		var rep roles.TokenReply
		if err := json.Unmarshal(res.body, &rep); err != nil || rep.Token == "" {
			t.Fatalf("CCM_STS reply %s: %v", res.body, err)
		}
		return rep
	}
	rep := sts(reg)
	if rep.ExpiresIn < 89*24*3600 {
		t.Errorf("device token lives %ds, want about 90 days", rep.ExpiresIn)
	}

	res := e.curlToken(rep.Token, gw+mpServerPrefix+"/SMS_MP/.sms_aut?MPLIST")
	if res.status != 200 || !strings.Contains(string(res.body), "<MPList>") {
		t.Fatalf("device token on the ServerAuth route: got %d %.200s, want 200 with the MP list", res.status, res.body)
	}
	md := decodeMetadata(t, e.curlToken(rep.Token, gw+"/CCM_Proxy_ServerAuth/ServiceMetadata"))
	if md.AuthMethod != "site_token" || md.Device != clientID || md.Claims["site"] != e.m.SiteCode || md.Claims["kind"] != "device" || md.Claims["sub"] != clientID {
		t.Errorf("ServiceMetadata = %+v, want the site token's identity and claims (site %s, kind device, sub %s)", md, e.m.SiteCode, clientID)
	}
	// The MutualAuth prefix takes the token when no certificate is presented.
	md = decodeMetadata(t, e.curlToken(rep.Token, gw+"/CCM_Proxy_MutualAuth/ServiceMetadata"))
	if md.AuthMethod != "site_token" || md.Claims["jti"] == nil {
		t.Errorf("MutualAuth ServiceMetadata = %+v, want the token claims", md)
	}

	renewed := sts(rep.Token)
	if renewed.Token == rep.Token {
		t.Error("renewal gave the same token, want a fresh one")
	}
	md = decodeMetadata(t, e.curlToken(renewed.Token, gw+"/CCM_Proxy_ServerAuth/ServiceMetadata"))
	if md.Device != clientID {
		t.Errorf("renewed token is for %q, want %q", md.Device, clientID)
	}

	// A device token straight from `cmg token issue` (pre-provisioned devices).
	direct := issueSiteToken(t, e.m, "-kind", "device", "-subject", "kiosk-17")
	if res := e.curlToken(direct, gw+mpServerPrefix+"/cmg-echo"); res.status != 200 {
		t.Errorf("issued device token: got %d %s, want 200", res.status, res.body)
	}
	// A content token is for the content endpoint only.
	content := issueSiteToken(t, e.m, "-kind", "content", "-subject", "kiosk-17", "-package", "PS100012")
	if res := e.curlToken(content, gw+mpServerPrefix+"/cmg-echo"); res.status != 401 || res.header.Get("CMG-Error") != "InvalidToken" {
		t.Errorf("content token on a role route: got %d %q, want 401 InvalidToken", res.status, res.header.Get("CMG-Error"))
	}
}

// TestAzureADDevices: OIDC tokens of an issuer whose JWKS the test serves
// over HTTPS; every kind of bad token is refused with 401 InvalidToken before
// anything reaches the role; a rotated JWKS is picked up without a restart.
func TestAzureADDevices(t *testing.T) {
	iss := newOIDCIssuer(t)
	iss.addKey("k1")
	const strangerTenant = "00000000-1111-2222-3333-444444444444"
	e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) {
		iss.oidcConfig(c, testTenant, otherTenant)
	}})
	gw := e.m.Gateways[0].ClientURL
	echoURL := gw + mpServerPrefix + "/cmg-echo"

	good := sign(t, iss.key("k1"), "k1", azureClaims("dev-aad-1"))
	res := e.curlToken(good, echoURL)
	if res.status != 200 {
		t.Fatalf("valid token: got %d %s, want 200", res.status, res.body)
	}
	var got echo
	_ = json.Unmarshal(res.body, &got)
	if got.header(gateway.HeaderDeviceID) != "dev-aad-1" || got.header(gateway.HeaderTenant) != testTenant || got.header(gateway.HeaderAuthMethod) != "oidc" {
		t.Errorf("role saw identity headers %v, want device dev-aad-1, tenant %s, method oidc", got.Headers, testTenant)
	}
	md := decodeMetadata(t, e.curlToken(good, gw+"/CCM_Proxy_ServerAuth/ServiceMetadata"))
	if md.AuthMethod != "oidc" || md.Device != "dev-aad-1" || md.Tenant != testTenant || md.Claims["tid"] != testTenant || md.Claims["deviceid"] != "dev-aad-1" {
		t.Errorf("ServiceMetadata = %+v, want the OIDC identity and token claims", md)
	}

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) jwt.MapClaims {
		c := azureClaims("dev-aad-1")
		c[k] = v
		return c
	}
	stranger := azureClaims("dev-aad-1")
	stranger["tid"], stranger["iss"] = strangerTenant, azureIssuer(strangerTenant)
	bad := []struct{ name, token string }{
		{"expired", sign(t, iss.key("k1"), "k1", with("exp", time.Now().Add(-time.Hour).Unix()))},
		{"not yet valid", sign(t, iss.key("k1"), "k1", with("nbf", time.Now().Add(time.Hour).Unix()))},
		{"wrong issuer", sign(t, iss.key("k1"), "k1", with("iss", "https://sts.example.net/"+testTenant+"/"))},
		{"wrong audience", sign(t, iss.key("k1"), "k1", with("aud", "api://someone-else"))},
		{"wrong tenant", sign(t, iss.key("k1"), "k1", stranger)},
		{"bad signature", sign(t, other, "k1", azureClaims("dev-aad-1"))},
		{"alg none", unsignedToken("k1", azureClaims("dev-aad-1"))},
		{"garbage", "not.a.token"},
	}
	before := e.rolesStats().Kinds["helper.echo"]
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			res := e.curlToken(tt.token, echoURL)
			if res.status != 401 || res.header.Get("CMG-Error") != "InvalidToken" {
				t.Errorf("got %d %q %s, want 401 InvalidToken", res.status, res.header.Get("CMG-Error"), res.body)
			}
		})
	}
	if after := e.rolesStats().Kinds["helper.echo"]; after != before {
		t.Errorf("the role received %d requests carrying refused tokens, want none", after-before)
	}
	fams := scrape(t, e.gws[0].admin)
	// A token whose algorithm OIDC does not take goes to the site-token
	// verifier, so the refusals are spread over both methods.
	if got := metricValue(fams, "cmg_gateway_auth_total", "result", "failure"); got < float64(len(bad)) {
		t.Errorf("cmg_gateway_auth_total{result=failure} = %v, want at least %d", got, len(bad))
	}

	// Rotation: the issuer publishes k2 and drops k1. A token of k2 (an
	// unknown kid) makes the gateway fetch the JWKS again: accepted, no
	// restart; a token of the removed k1 is refused from then on.
	iss.addKey("k2")
	old := iss.removeKey("k1")
	if res := e.curlToken(sign(t, iss.key("k2"), "k2", azureClaims("dev-aad-2")), echoURL); res.status != 200 {
		t.Fatalf("token of the newly published key: got %d %s, want 200", res.status, res.body)
	}
	if res := e.curlToken(sign(t, old, "k1", azureClaims("dev-aad-1")), echoURL); res.status != 401 || res.header.Get("CMG-Error") != "InvalidToken" {
		t.Errorf("token of the removed key: got %d %q, want 401 InvalidToken", res.status, res.header.Get("CMG-Error"))
	}
}

// TestPKIDevices: client certificates, the demo's and one of another issuing
// CA, are verified and reach the roles with their identity; a certificate of
// an unknown CA is refused.
func TestPKIDevices(t *testing.T) {
	e := newEnv(t, envOptions{connectors: 1})
	gw := e.m.Gateways[0].ClientURL
	res := e.curl(true, gw+supPrefix+"/cmg-echo")
	if res.status != 200 {
		t.Fatalf("certificate device at the SUP: got %d %s, want 200", res.status, res.body)
	}
	var got echo
	_ = json.Unmarshal(res.body, &got)
	if got.header(gateway.HeaderAuthMethod) != "certificate" || got.header(gateway.HeaderDeviceID) != "device-0001" {
		t.Errorf("role saw %v, want certificate identity device-0001", got.Headers)
	}
	md := decodeMetadata(t, e.curl(true, gw+"/CCM_Proxy_MutualAuth/ServiceMetadata"))
	if md.AuthMethod != "certificate" || len(md.Chain) != 3 || md.Claims != nil {
		t.Errorf("ServiceMetadata = %+v, want the certificate chain (leaf, issuing CA, root) and no token claims", md)
	}

	dir := t.TempDir()
	rogue := newTestCA(t, pkix.Name{CommonName: "Rogue CA"}, nil)
	cert, key := rogue.leaf(t, dir, "rogue", pkix.Name{CommonName: "device-0001"}, true)
	res = e.curl(false, gw+mpPrefix+"/cmg-echo", "--cert", cert, "--key", key)
	if res.status != 403 || res.header.Get("CMG-Error") != "ClientCertificateRequired" {
		t.Errorf("certificate of an unknown CA: got %d %q, want 403 ClientCertificateRequired", res.status, res.header.Get("CMG-Error"))
	}
}

// TestServerCertificateReloadOnChange: a server certificate replaced on disk
// is picked up by the file watch, without a signal, and served to new
// handshakes, while a kept-alive connection goes on.
func TestServerCertificateReloadOnChange(t *testing.T) {
	e := newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) {
		c.Client.CertCheckInterval = 200 * time.Millisecond
	}})
	g := e.m.Gateways[0]
	addr := strings.TrimPrefix(g.ClientURL, "https://")
	old := servedSerial(t, e.m.CAFile, addr)
	keep := keepAliveClient(t, e.m.CAFile, e.m.ClientCertFile, e.m.ClientKeyFile)
	url := g.ClientURL + mpPrefix + "/cmg-echo"
	if code, _ := keep.get(t, url); code != 200 {
		t.Fatalf("keep-alive connection: got %d", code)
	}
	if err := pki.IssueServer(pki.Dir(e.m.PKIDir), []string{"localhost", "127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renewed certificate on new handshakes", 10*time.Second, func() bool {
		return servedSerial(t, e.m.CAFile, addr) != old
	})
	if code, reused := keep.get(t, url); code != 200 || !reused {
		t.Errorf("kept-alive connection after the reload: got %d (reused %v), want 200 on the same connection", code, reused)
	}
	if got := metricValue(scrape(t, e.gws[0].admin), "cmg_config_reloads_total", "what", "certificate", "result", "success"); got < 1 {
		t.Errorf("cmg_config_reloads_total{what=certificate,result=success} = %v, want at least 1", got)
	}
}
