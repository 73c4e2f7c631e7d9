package auth

import (
	"crypto/ecdsa"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// siteKeyFile writes a site public key as `cmg token keygen` does.
func siteKeyFile(t *testing.T, dir, name string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := sitetoken.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := sitetoken.WritePublicKey(f, &key.PublicKey); err != nil {
		t.Fatal(err)
	}
	return key, f
}

func issue(t *testing.T, iss *sitetoken.Issuer, kind sitetoken.Kind, sub string, opts sitetoken.Options) string {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = t0
	}
	tok, err := iss.Issue(kind, sub, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenSetup is an Authenticator taking site tokens of sites PS1 and PS2,
// OIDC tokens, and client certificates.
type tokenSetup struct {
	a        *Authenticator
	ps1, ps2 *sitetoken.Issuer
	rogue    *sitetoken.Issuer // a key nobody trusts, under PS1's kid
	root     *testCA
	oidcKey  namedKey
	jwks     *jwksServer
}

func newTokenSetup(t *testing.T) *tokenSetup {
	dir := t.TempDir()
	k1, f1 := siteKeyFile(t, dir, "ps1.pub")
	k2, f2 := siteKeyFile(t, dir, "ps2.pub")
	s := &tokenSetup{root: newRootCA(t, "Test Root"), oidcKey: namedKey{"ad1", rsaKey(t, 0)}}
	var err error
	if s.ps1, err = sitetoken.NewIssuer(k1, "", "PS1"); err != nil {
		t.Fatal(err)
	}
	if s.ps2, err = sitetoken.NewIssuer(k2, "ps2-2026", "PS2"); err != nil {
		t.Fatal(err)
	}
	rogueKey, err := sitetoken.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if s.rogue, err = sitetoken.NewIssuer(rogueKey, s.ps1.KeyID(), "PS1"); err != nil {
		t.Fatal(err)
	}
	s.jwks = newJWKSServer(t, s.oidcKey)
	cfg := oidcConfig(s.jwks.URL + "/keys")
	cfg.Certificates.Roots = []string{writeCerts(t, dir, "roots.pem", s.root.cert)}
	cfg.Tokens.Site.Keys = []SiteKeyConfig{{Site: "PS1", File: f1}, {Site: "PS2", File: f2, KeyID: "ps2-2026"}}
	if s.a, err = New(cfg, &Options{Now: newClock().Now, HTTPClient: s.jwks.Client()}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSiteTokens(t *testing.T) {
	s := newTokenSetup(t)
	tests := []struct {
		name   string
		token  string
		mode   Mode
		why    string // "" means accepted
		device string
	}{
		{"device token, server auth", issue(t, s.ps1, sitetoken.Device, "ghost-01", sitetoken.Options{}), Server, "", "ghost-01"},
		{"device token, mutual auth without a certificate", issue(t, s.ps1, sitetoken.Device, "ghost-01", sitetoken.Options{}), Mutual, "", "ghost-01"},
		{"second site with its own kid", issue(t, s.ps2, sitetoken.Device, "ghost-02", sitetoken.Options{}), Server, "", "ghost-02"},
		{"registration token", issue(t, s.ps1, sitetoken.Registration, "bulk-registration", sitetoken.Options{}), Server, "", "bulk-registration"},
		{"content token on a role route", issue(t, s.ps1, sitetoken.Content, "ghost-01", sitetoken.Options{Package: "PS100004"}), Server, "token kind not accepted here", ""},
		{"expired", issue(t, s.ps1, sitetoken.Device, "ghost-01", sitetoken.Options{Now: t0.Add(-91 * 24 * time.Hour)}), Server, "token expired", ""},
		{"not yet valid", issue(t, s.ps1, sitetoken.Device, "ghost-01", sitetoken.Options{Now: t0.Add(time.Hour)}), Server, "token not yet valid", ""},
		{"bad signature", issue(t, s.rogue, sitetoken.Device, "ghost-01", sitetoken.Options{}), Server, "bad signature", ""},
		{"ES256 token of an unknown key", signed(t, jwt.SigningMethodES256, newKey(t), "nobody", jwt.MapClaims{"exp": t0.Add(time.Hour).Unix()}), Server, "unknown signing key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.a.Authenticate(bearerRequest(tt.token), tt.mode)
			if tt.why != "" {
				wantTokenRefused(t, err, tt.why)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if id.Method != SiteToken || id.Device != tt.device {
				t.Errorf("got method %q device %q, want site_token %q", id.Method, id.Device, tt.device)
			}
		})
	}
}

func TestContentTokens(t *testing.T) {
	s := newTokenSetup(t)
	content := issue(t, s.ps1, sitetoken.Content, "ghost-01", sitetoken.Options{Package: "PS100004"})
	id, err := s.a.AuthenticateContent(bearerRequest(content))
	if err != nil {
		t.Fatal(err)
	}
	if id.Claims["pkg"] != "PS100004" || id.Claims["site"] != "PS1" {
		t.Errorf("got claims %v, want pkg PS100004 and site PS1", id.Claims)
	}
	device := issue(t, s.ps1, sitetoken.Device, "ghost-01", sitetoken.Options{})
	_, err = s.a.AuthenticateContent(bearerRequest(device))
	wantTokenRefused(t, err, "token kind not accepted here")
	oidc := signed(t, jwt.SigningMethodRS256, s.oidcKey.key, s.oidcKey.kid, adClaims())
	_, err = s.a.AuthenticateContent(bearerRequest(oidc))
	wantTokenRefused(t, err, "token kind not accepted here")
	_, err = s.a.AuthenticateContent(httptestRequest(nil))
	wantReason(t, err, httperror.InvalidToken)
}

func httptestRequest(h http.Header) *http.Request {
	r := bearerRequest("x")
	r.Header = http.Header{}
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}

func TestAuthenticateModes(t *testing.T) {
	s := newTokenSetup(t)
	device := s.root.leaf(t, "Ghost-01")
	site := issue(t, s.ps1, sitetoken.Device, "ghost-02", sitetoken.Options{})
	oidc := signed(t, jwt.SigningMethodRS256, s.oidcKey.key, s.oidcKey.kid, adClaims())
	tests := []struct {
		name       string
		mode       Mode
		cert       bool
		header     http.Header
		want       httperror.Reason
		wantMethod Method
	}{
		{"mutual: certificate", Mutual, true, nil, "", Certificate},
		{"mutual: certificate wins over a bad token", Mutual, true, http.Header{"Authorization": {"Bearer junk"}}, "", Certificate},
		{"mutual: site token", Mutual, false, http.Header{"Authorization": {"Bearer " + site}}, "", SiteToken},
		{"mutual: OIDC token", Mutual, false, http.Header{"Authorization": {"bearer " + oidc}}, "", OIDC},
		{"mutual: nothing", Mutual, false, nil, httperror.ClientCertificateRequired, ""},
		{"mutual: bad token", Mutual, false, http.Header{"Authorization": {"Bearer junk"}}, httperror.InvalidToken, ""},
		{"server: site token", Server, false, http.Header{"Authorization": {"Bearer " + site}}, "", SiteToken},
		{"server: certificate is not enough", Server, true, nil, httperror.InvalidToken, ""},
		{"server: nothing", Server, false, nil, httperror.InvalidToken, ""},
		{"server: basic auth", Server, false, http.Header{"Authorization": {"Basic Zm9vOmJhcg=="}}, httperror.InvalidToken, ""},
		{"server: empty bearer", Server, false, http.Header{"Authorization": {"Bearer "}}, httperror.InvalidToken, ""},
		{"server: two Authorization headers", Server, false, http.Header{"Authorization": {"Bearer " + site, "Bearer " + site}}, httperror.InvalidToken, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptestRequest(tt.header)
			if tt.cert {
				r.TLS = certRequest(device).TLS
			}
			id, err := s.a.Authenticate(r, tt.mode)
			wantReason(t, err, tt.want)
			if tt.want == "" && id.Method != tt.wantMethod {
				t.Errorf("got method %q, want %q", id.Method, tt.wantMethod)
			}
			if tt.wantMethod == Certificate && id.Device != "ghost-01" {
				t.Errorf("got device %q, want the CN lower-cased", id.Device)
			}
		})
	}
}

func TestNoTokensConfigured(t *testing.T) {
	root := newRootCA(t, "Test Root")
	cfg := DefaultConfig()
	cfg.Certificates.Roots = []string{writeCerts(t, t.TempDir(), "roots.pem", root.cert)}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearerRequest("eyJhbGciOiJFUzI1NiJ9.e30.x"), Server)
	wantTokenRefused(t, err, "accepts no bearer tokens")
	_, err = a.Authenticate(httptestRequest(nil), Mutual)
	wantReason(t, err, httperror.ClientCertificateRequired)
}
