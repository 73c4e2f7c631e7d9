package sitetoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustIssuer(t testing.TB, key *ecdsa.PrivateKey, kid, site string) *Issuer {
	t.Helper()
	iss, err := NewIssuer(key, kid, site)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mustVerifier(t testing.TB, opts VerifyOptions, keys ...Key) *Verifier {
	t.Helper()
	v, err := NewVerifier(keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func at(ts time.Time) func() time.Time { return func() time.Time { return ts } }

func TestRoundTrip(t *testing.T) {
	key := mustKey(t)
	iss := mustIssuer(t, key, "", "PS1")
	v := mustVerifier(t, VerifyOptions{Now: at(t0.Add(time.Hour)), Audience: "cmg"},
		Key{ID: iss.KeyID(), Site: "PS1", Public: &key.PublicKey})
	tests := []struct {
		name    string
		kind    Kind
		subject string
		opts    Options
		wantTTL time.Duration
	}{
		{"device default", Device, "ghost-01", Options{}, 90 * 24 * time.Hour},
		{"registration default", Registration, "bulk", Options{}, 72 * time.Hour},
		{"registration max", Registration, "bulk", Options{TTL: 168 * time.Hour}, 168 * time.Hour},
		{"content default", Content, "ghost-01", Options{Package: "PS100004"}, 24 * time.Hour},
		{"device short", Device, "ghost-02", Options{TTL: 2 * time.Hour}, 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = t0
			tt.opts.Audience = []string{"cmg"}
			tok, err := iss.Issue(tt.kind, tt.subject, tt.opts)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Kind != tt.kind || c.Subject != tt.subject || c.Site != "PS1" || c.Package != tt.opts.Package {
				t.Errorf("got kind %q sub %q site %q pkg %q, want %q %q PS1 %q", c.Kind, c.Subject, c.Site, c.Package, tt.kind, tt.subject, tt.opts.Package)
			}
			if got := c.Expires.Sub(c.IssuedAt); got != tt.wantTTL {
				t.Errorf("got lifetime %s, want %s", got, tt.wantTTL)
			}
			if !c.IssuedAt.Equal(t0) || !c.NotBefore.Equal(t0) {
				t.Errorf("got iat %s nbf %s, want %s", c.IssuedAt, c.NotBefore, t0)
			}
			if c.Issuer != IssuerFor("PS1") || c.KeyID != iss.KeyID() || len(c.ID) != 32 {
				t.Errorf("got iss %q kid %q jti %q", c.Issuer, c.KeyID, c.ID)
			}
			if m := c.Map(); m["kind"] != string(tt.kind) || m["exp"] != c.Expires.Unix() {
				t.Errorf("got map %v", m)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	iss := mustIssuer(t, mustKey(t), "k1", "PS1")
	tests := []struct {
		name    string
		kind    Kind
		subject string
		opts    Options
		wantErr error
	}{
		{"registration over 7 days", Registration, "bulk", Options{TTL: 169 * time.Hour}, ErrTTLTooLong},
		{"registration 30 days", Registration, "bulk", Options{TTL: 30 * 24 * time.Hour}, ErrTTLTooLong},
		{"content without package", Content, "d1", Options{}, nil},
		{"package on device token", Device, "d1", Options{Package: "P"}, nil},
		{"unknown kind", Kind("admin"), "d1", Options{}, nil},
		{"empty subject", Device, "", Options{}, nil},
		{"subject with space", Device, "a b", Options{}, nil},
		{"negative ttl", Device, "d1", Options{TTL: -time.Hour}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := iss.Issue(tt.kind, tt.subject, tt.opts)
			if err == nil {
				t.Fatalf("got token %q, want an error", tok)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewIssuerRefusesBadKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewIssuer(p384, "k", "PS1"); err == nil {
		t.Error("got a P-384 issuer, want an error")
	}
	if _, err := NewIssuer(nil, "k", "PS1"); err == nil {
		t.Error("got an issuer with no key, want an error")
	}
	if _, err := NewIssuer(mustKey(t), "k", ""); err == nil {
		t.Error("got an issuer with no site, want an error")
	}
}

func TestRenewDue(t *testing.T) {
	c := &Claims{Kind: Device, IssuedAt: t0}
	if c.RenewDue(t0.Add(29 * 24 * time.Hour)) {
		t.Error("got renew due at 29 days, want not due")
	}
	if !c.RenewDue(t0.Add(30 * 24 * time.Hour)) {
		t.Error("got not due at 30 days, want due")
	}
	c.Kind = Registration
	if c.RenewDue(t0.Add(60 * 24 * time.Hour)) {
		t.Error("got a registration token due for renewal, want never")
	}
}

// sign makes a token with arbitrary header and claims, for the refusal cases.
func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": IssuerFor("PS1"), "sub": "d1", "aud": []string{"cmg"}, "site": "PS1", "kind": "device",
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix(), "jti": "abc",
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	c[k] = v
	if v == nil {
		delete(c, k)
	}
	return c
}

func TestVerifyRefuses(t *testing.T) {
	key := mustKey(t)
	other := mustKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(10 * time.Minute)
	v := mustVerifier(t, VerifyOptions{Now: at(now), Audience: "cmg", Leeway: 30 * time.Second},
		Key{ID: "k1", Site: "PS1", Public: &key.PublicKey},
		Key{ID: "k2", Site: "PS2", Public: &other.PublicKey})
	es := jwt.SigningMethodES256
	none := jwt.SigningMethodNone
	tests := []struct {
		name  string
		token string
		kinds []Kind
		want  error
	}{
		{"good control", sign(t, es, key, "k1", goodClaims()), nil, nil},
		{"expired", sign(t, es, key, "k1", with(goodClaims(), "exp", now.Add(-time.Minute).Unix())), nil, ErrExpired},
		{"expired within leeway", sign(t, es, key, "k1", with(goodClaims(), "exp", now.Add(-10*time.Second).Unix())), nil, nil},
		{"not yet valid", sign(t, es, key, "k1", with(goodClaims(), "nbf", now.Add(time.Hour).Unix())), nil, ErrNotYetValid},
		{"issued in the future", sign(t, es, key, "k1", with(goodClaims(), "iat", now.Add(time.Hour).Unix())), nil, ErrNotYetValid},
		{"no exp", sign(t, es, key, "k1", with(goodClaims(), "exp", nil)), nil, ErrClaims},
		{"no iat", sign(t, es, key, "k1", with(goodClaims(), "iat", nil)), nil, ErrClaims},
		{"no sub", sign(t, es, key, "k1", with(goodClaims(), "sub", nil)), nil, ErrClaims},
		{"no jti", sign(t, es, key, "k1", with(goodClaims(), "jti", nil)), nil, ErrClaims},
		{"unknown kind", sign(t, es, key, "k1", with(goodClaims(), "kind", "admin")), nil, ErrClaims},
		{"kind not accepted", sign(t, es, key, "k1", goodClaims()), []Kind{Content}, ErrKind},
		{"content without pkg", sign(t, es, key, "k1", with(goodClaims(), "kind", "content")), nil, ErrClaims},
		{"device with pkg", sign(t, es, key, "k1", with(goodClaims(), "pkg", "P1")), nil, ErrClaims},
		{"wrong issuer", sign(t, es, key, "k1", with(goodClaims(), "iss", "https://evil")), nil, ErrIssuer},
		{"wrong audience", sign(t, es, key, "k1", with(goodClaims(), "aud", "other")), nil, ErrAudience},
		{"no audience", sign(t, es, key, "k1", with(goodClaims(), "aud", nil)), nil, ErrAudience},
		{"site of another key", sign(t, es, key, "k1", with(with(goodClaims(), "site", "PS2"), "iss", IssuerFor("PS2"))), nil, ErrSite},
		{"unknown kid", sign(t, es, key, "k9", goodClaims()), nil, ErrUnknownKey},
		{"no kid", sign(t, es, key, "", goodClaims()), nil, ErrUnknownKey},
		{"bad signature", sign(t, es, other, "k1", goodClaims()), nil, ErrSignature},
		{"alg none", sign(t, none, jwt.UnsafeAllowNoneSignatureType, "k1", goodClaims()), nil, ErrAlgorithm},
		{"HS256 with the public key as secret", sign(t, jwt.SigningMethodHS256, pubDER, "k1", goodClaims()), nil, ErrAlgorithm},
		{"ES384", sign(t, jwt.SigningMethodES384, p384, "k1", goodClaims()), nil, ErrAlgorithm},
		{"garbage", "not.a.token", nil, ErrMalformed},
		{"two parts", "abc.def", nil, ErrMalformed},
		{"empty", "", nil, ErrMalformed},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token, tt.kinds...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want the token accepted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got accepted with claims %+v, want %v", c, tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyTampered(t *testing.T) {
	key := mustKey(t)
	iss := mustIssuer(t, key, "k1", "PS1")
	v := mustVerifier(t, VerifyOptions{Now: at(t0)}, Key{ID: "k1", Site: "PS1", Public: &key.PublicKey})
	tok, err := iss.Issue(Device, "d1", Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	other, err := iss.Issue(Device, "d2", Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	p, q := strings.Split(tok, "."), strings.Split(other, ".")
	swapped := p[0] + "." + q[1] + "." + p[2]
	if _, err := v.Verify(swapped); !errors.Is(err, ErrSignature) {
		t.Errorf("got %v for a swapped payload, want %v", err, ErrSignature)
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	key := mustKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys []Key
		opts VerifyOptions
	}{
		{"duplicate kid", []Key{{"k", "S", &key.PublicKey}, {"k", "S", &key.PublicKey}}, VerifyOptions{}},
		{"no site", []Key{{"k", "", &key.PublicKey}}, VerifyOptions{}},
		{"no kid", []Key{{"", "S", &key.PublicKey}}, VerifyOptions{}},
		{"no key", []Key{{"k", "S", nil}}, VerifyOptions{}},
		{"P-384", []Key{{"k", "S", &p384.PublicKey}}, VerifyOptions{}},
		{"negative leeway", nil, VerifyOptions{Leeway: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.keys, tt.opts); err == nil {
				t.Error("got a verifier, want an error")
			}
		})
	}
}
