package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

const (
	tenantA  = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	tenantB  = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	audience = "api://cmg-gateway"
	issuerAD = "https://login.microsoftonline.com/{tenant}/v2.0"
)

var (
	rsaOnce sync.Once
	rsaPool []*rsa.PrivateKey
)

// rsaKey returns one of four RSA keys generated once for the whole test binary.
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaPool = append(rsaPool, k)
		}
	})
	return rsaPool[i]
}

// namedKey is a signing key published under a kid.
type namedKey struct {
	kid string
	key *rsa.PrivateKey
}

func jwkOf(k namedKey) map[string]string {
	enc := base64.RawURLEncoding
	return map[string]string{
		"kty": "RSA", "use": "sig", "kid": k.kid,
		"n": enc.EncodeToString(k.key.N.Bytes()),
		"e": enc.EncodeToString(big.NewInt(int64(k.key.E)).Bytes()),
	}
}

func jwksOf(keys ...namedKey) []byte {
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, jwkOf(k))
	}
	b, _ := json.Marshal(doc)
	return b
}

// jwksServer is a real HTTPS issuer key endpoint whose keys the test rotates.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	doc  []byte
	hits atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...namedKey) *jwksServer {
	s := &jwksServer{doc: jwksOf(keys...)}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc := s.doc
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(doc []byte) {
	s.mu.Lock()
	s.doc = doc
	s.mu.Unlock()
}

func oidcConfig(jwksURL string) Config {
	cfg := DefaultConfig()
	cfg.Tokens.OIDC.Issuers = []string{issuerAD}
	cfg.Tokens.OIDC.Audiences = []string{audience}
	cfg.Tokens.OIDC.Tenants = []string{tenantA}
	cfg.Tokens.OIDC.JWKSURL = jwksURL
	return cfg
}

func newOIDCAuth(t *testing.T, srv *jwksServer, clock *fakeClock, mutate func(*Config)) *Authenticator {
	t.Helper()
	cfg := oidcConfig(srv.URL + "/discovery/v2.0/keys")
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg, &Options{Now: clock.Now, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// adClaims are the claims of an Azure AD device token valid at t0.
func adClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": strings.ReplaceAll(issuerAD, "{tenant}", tenantA), "aud": audience, "tid": tenantA,
		"sub": "user-object-id", "deviceid": "6a1f3c2e-5b4d-4e8f-9a0b-1c2d3e4f5a6b",
		"iat": t0.Add(-time.Minute).Unix(), "nbf": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
}

func set(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func signed(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://gw.example/CCM_Proxy_ServerAuth/72057594037927939/CCM_STS", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// wantTokenRefused checks err is InvalidToken (401) with a detail containing why.
func wantTokenRefused(t *testing.T, err error, why string) {
	t.Helper()
	wantReason(t, err, httperror.InvalidToken)
	rec := httptest.NewRecorder()
	httperror.Write(rec, "req-1", httperror.As(err, ""))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get(httperror.Header) != "InvalidToken" {
		t.Errorf("got status %d, header %q, want 401 InvalidToken", rec.Code, rec.Header().Get(httperror.Header))
	}
	if d := httperror.As(err, "").Detail; !strings.Contains(d, why) {
		t.Errorf("got detail %q, want it to say %q", d, why)
	}
}

func TestOIDCTokens(t *testing.T) {
	k1 := namedKey{"k1", rsaKey(t, 0)}
	srv := newJWKSServer(t, k1)
	a := newOIDCAuth(t, srv, newClock(), func(c *Config) { c.Tokens.OIDC.Algorithms = []string{"RS256", "ES256"} })
	pubDER, err := x509.MarshalPKIXPublicKey(&k1.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ec := newKey(t)
	rs, hs, es, none := jwt.SigningMethodRS256, jwt.SigningMethodHS256, jwt.SigningMethodES256, jwt.SigningMethodNone
	tests := []struct {
		name  string
		token string
		why   string // "" means accepted
	}{
		{"valid", signed(t, rs, k1.key, "k1", adClaims()), ""},
		{"expired", signed(t, rs, k1.key, "k1", set(adClaims(), "exp", t0.Add(-time.Minute).Unix())), "token expired"},
		{"expired within leeway", signed(t, rs, k1.key, "k1", set(adClaims(), "exp", t0.Add(-20*time.Second).Unix())), ""},
		{"not yet valid", signed(t, rs, k1.key, "k1", set(adClaims(), "nbf", t0.Add(time.Hour).Unix())), "token not yet valid"},
		{"issued in the future", signed(t, rs, k1.key, "k1", set(adClaims(), "iat", t0.Add(time.Hour).Unix())), "token not yet valid"},
		{"no exp", signed(t, rs, k1.key, "k1", set(adClaims(), "exp", nil)), "missing or invalid claim"},
		{"wrong issuer", signed(t, rs, k1.key, "k1", set(adClaims(), "iss", "https://sts.windows.net/"+tenantA+"/")), "wrong issuer"},
		{"issuer of another tenant", signed(t, rs, k1.key, "k1", set(adClaims(), "iss", strings.ReplaceAll(issuerAD, "{tenant}", tenantB))), "wrong issuer"},
		{"wrong audience", signed(t, rs, k1.key, "k1", set(adClaims(), "aud", "api://other-app")), "wrong audience"},
		{"no audience", signed(t, rs, k1.key, "k1", set(adClaims(), "aud", nil)), "wrong audience"},
		{"wrong tenant", signed(t, rs, k1.key, "k1", set(adClaims(), "tid", tenantB, "iss", strings.ReplaceAll(issuerAD, "{tenant}", tenantB))), "wrong tenant"},
		{"no tenant", signed(t, rs, k1.key, "k1", set(adClaims(), "tid", nil)), "wrong issuer"},
		{"bad signature", signed(t, rs, rsaKey(t, 1), "k1", adClaims()), "bad signature"},
		{"unknown key", signed(t, rs, rsaKey(t, 1), "k9", adClaims()), "unknown signing key"},
		{"no kid", signed(t, rs, k1.key, "", adClaims()), "unknown signing key"},
		{"alg none", signed(t, none, jwt.UnsafeAllowNoneSignatureType, "k1", adClaims()), "algorithm not allowed"},
		{"HS256 with the public key as secret", signed(t, hs, pubDER, "k1", adClaims()), "algorithm not allowed"},
		{"RS384 not configured", signed(t, jwt.SigningMethodRS384, k1.key, "k1", adClaims()), "algorithm not allowed"},
		{"ES256 on an RSA key", signed(t, es, ec, "k1", adClaims()), "algorithm not allowed"},
		{"no device claim", signed(t, rs, k1.key, "k1", set(adClaims(), "deviceid", nil)), "no device identity claim"},
		{"device claim not a string", signed(t, rs, k1.key, "k1", set(adClaims(), "deviceid", 42)), "no device identity claim"},
		{"garbage", "Zm9v.YmFy.YmF6", "malformed token"},
		{"not a JWT", "opaque-token", "malformed token"},
		{"huge", strings.Repeat("A", maxTokenBytes+1), "malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.Authenticate(bearerRequest(tt.token), Server)
			if tt.why != "" {
				wantTokenRefused(t, err, tt.why)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want the token accepted", err)
			}
			if id.Method != OIDC || id.Device != "6a1f3c2e-5b4d-4e8f-9a0b-1c2d3e4f5a6b" || id.Tenant != tenantA || id.Subject != "user-object-id" {
				t.Errorf("got identity %+v", id)
			}
			if id.Expires.IsZero() || id.Expires.After(t0.Add(time.Hour)) {
				t.Errorf("got expiry %s, want the token's exp", id.Expires)
			}
		})
	}
}

func TestJWKSRotation(t *testing.T) {
	k1, k2 := namedKey{"k1", rsaKey(t, 0)}, namedKey{"k2", rsaKey(t, 1)}
	srv := newJWKSServer(t, k1)
	clock := newClock()
	a := newOIDCAuth(t, srv, clock, nil)
	accept := func(step string, k namedKey) {
		t.Helper()
		c := set(adClaims(), "exp", clock.Now().Add(time.Hour).Unix())
		if _, err := a.Authenticate(bearerRequest(signed(t, jwt.SigningMethodRS256, k.key, k.kid, c)), Server); err != nil {
			t.Fatalf("%s: token of %s: got %v, want accepted", step, k.kid, err)
		}
	}
	refuse := func(step string, k namedKey, why string) {
		t.Helper()
		c := set(adClaims(), "exp", clock.Now().Add(time.Hour).Unix())
		_, err := a.Authenticate(bearerRequest(signed(t, jwt.SigningMethodRS256, k.key, k.kid, c)), Server)
		wantTokenRefused(t, err, why)
	}

	accept("first token", k1) // the first token fetches the keys
	srv.publish(jwksOf(k1, k2))
	refuse("new key within the refresh rate limit", k2, "unknown signing key")
	clock.Advance(time.Minute)
	accept("new key after the rate limit, without restart", k2)
	accept("old key still published", k1)
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("got %d JWKS fetches, want 2", got)
	}

	srv.publish(jwksOf(k2))
	accept("removed key before the scheduled refresh", k1)
	clock.Advance(time.Hour)
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	refuse("removed key after the refresh", k1, "unknown signing key")
	accept("remaining key", k2)
}

func TestJWKSUnknownKidFlood(t *testing.T) {
	k1 := namedKey{"k1", rsaKey(t, 0)}
	srv := newJWKSServer(t, k1)
	a := newOIDCAuth(t, srv, newClock(), nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := signed(t, jwt.SigningMethodRS256, k1.key, fmt.Sprintf("bogus-%d", i), adClaims())
			if _, err := a.Authenticate(bearerRequest(tok), Server); err == nil {
				t.Errorf("token with kid bogus-%d accepted", i)
			}
		}()
	}
	wg.Wait()
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("got %d JWKS fetches for 50 unknown kids, want 1", got)
	}
}

func TestJWKSBadDocumentKeepsKeys(t *testing.T) {
	k1 := namedKey{"k1", rsaKey(t, 0)}
	srv := newJWKSServer(t, k1)
	clock := newClock()
	a := newOIDCAuth(t, srv, clock, nil)
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
	}{
		{"not JSON", "<html>"},
		{"no keys", `{"keys":[]}`},
		{"only a symmetric key", `{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0"}]}`},
		{"weak RSA key", `{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.publish([]byte(tt.doc))
			clock.Advance(2 * time.Hour)
			if err := a.Refresh(context.Background()); err == nil {
				t.Error("got no error refreshing from a bad document")
			}
			c := set(adClaims(), "exp", clock.Now().Add(time.Hour).Unix())
			if _, err := a.Authenticate(bearerRequest(signed(t, jwt.SigningMethodRS256, k1.key, "k1", c)), Server); err != nil {
				t.Errorf("got %v, want the held key still accepted", err)
			}
		})
	}
}

func TestJWKSFile(t *testing.T) {
	k1, k2 := namedKey{"k1", rsaKey(t, 0)}, namedKey{"k2", rsaKey(t, 1)}
	dir := t.TempDir()
	file := writeFile(t, dir, "jwks.json", jwksOf(k1))
	clock := newClock()
	cfg := oidcConfig("")
	cfg.Tokens.OIDC.JWKSFile = file
	a, err := New(cfg, &Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(k namedKey) string {
		return signed(t, jwt.SigningMethodRS256, k.key, k.kid, set(adClaims(), "exp", clock.Now().Add(time.Hour).Unix()))
	}
	if _, err := a.Authenticate(bearerRequest(tok(k1)), Server); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "jwks.json", jwksOf(k1, k2))
	clock.Advance(time.Minute)
	if _, err := a.Authenticate(bearerRequest(tok(k2)), Server); err != nil {
		t.Fatalf("new key in the changed file: got %v, want accepted", err)
	}
	writeFile(t, dir, "jwks.json", jwksOf(k2))
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearerRequest(tok(k1)), Server)
	wantTokenRefused(t, err, "unknown signing key")

	if _, err := New(cfg, &Options{Now: clock.Now}); err != nil {
		t.Fatalf("reloading the same file: %v", err)
	}
	writeFile(t, dir, "jwks.json", []byte("{}"))
	if _, err := New(cfg, nil); err == nil {
		t.Error("got an authenticator from a JWKS file with no key, want an error")
	}
}
