package auth

import (
	"bytes"
	"crypto/x509"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmg-gateway/cmg/sitetoken"
)

// FuzzVerifyToken feeds arbitrary bearer tokens to an Authenticator taking
// site and OIDC tokens. The seeds are tokens of every kind signed by keys the
// authenticator does not trust, under kids it knows: no input may be accepted
// and none may panic.
func FuzzVerifyToken(f *testing.F) {
	dir := f.TempDir()
	trusted, err := sitetoken.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	pubFile := filepath.Join(dir, "ps1.pub")
	if err := sitetoken.WritePublicKey(pubFile, &trusted.PublicKey); err != nil {
		f.Fatal(err)
	}
	oidcKey := namedKey{"ad1", rsaKey(f, 0)}
	cfg := oidcConfig("")
	cfg.Tokens.OIDC.JWKSFile = writeFile(f, dir, "jwks.json", jwksOf(oidcKey))
	cfg.Tokens.OIDC.Algorithms = []string{"RS256", "ES256", "PS256"}
	cfg.Tokens.Site.Keys = []SiteKeyConfig{{Site: "PS1", File: pubFile, KeyID: "ps1"}}
	a, err := New(cfg, &Options{Now: func() time.Time { return t0 }})
	if err != nil {
		f.Fatal(err)
	}

	rogue, err := sitetoken.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	iss, err := sitetoken.NewIssuer(rogue, "ps1", "PS1")
	if err != nil {
		f.Fatal(err)
	}
	for _, k := range sitetoken.Kinds {
		opts := sitetoken.Options{Now: t0}
		if k == sitetoken.Content {
			opts.Package = "PS100001"
		}
		tok, err := iss.Issue(k, "ghost-01", opts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add(signed(f, jwt.SigningMethodRS256, rsaKey(f, 1), "ad1", adClaims()))
	f.Add(signed(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ad1", adClaims()))
	f.Add(signed(f, jwt.SigningMethodHS256, []byte("secret"), "ad1", adClaims()))
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6ImFkMSJ9.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		r := bearerRequest(token)
		for _, mode := range []Mode{Server, Mutual} {
			if id, err := a.Authenticate(r, mode); err == nil {
				t.Fatalf("accepted %q as %+v", token, id)
			}
		}
		if id, err := a.AuthenticateContent(r); err == nil {
			t.Fatalf("accepted content token %q as %+v", token, id)
		}
	})
}

// FuzzParseCRL feeds arbitrary bytes to the CRL parser. Nothing may panic, and
// a CRL that verifies against the CA must carry the exact signed content of a
// CRL the CA made.
func FuzzParseCRL(f *testing.F) {
	ca := newRootCA(f, "Fuzz Root")
	made := [][]byte{ca.crl(f, 1, t0, time.Hour, big.NewInt(5), big.NewInt(1<<40)), ca.crl(f, 2, t0, time.Hour)}
	var signed [][]byte // the content the CA signed
	for _, der := range made {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			f.Fatal(err)
		}
		signed = append(signed, l.RawTBSRevocationList)
		f.Add(der)
		f.Add(pemCRL(der))
	}
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseCRL(data)
		if err != nil {
			return
		}
		_ = set.isRevoked(big.NewInt(5))
		_ = set.fresh(t0)
		if set.checkIssuer(ca.cert) != nil {
			return
		}
		for _, tbs := range signed {
			if bytes.Equal(set.list.RawTBSRevocationList, tbs) {
				return
			}
		}
		t.Fatalf("a CRL with content the CA never signed verified: %x", data)
	})
}

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser: nothing may
// panic, and every key it returns is an accepted asymmetric key.
func FuzzParseJWKS(f *testing.F) {
	f.Add(jwksOf(namedKey{"k1", rsaKey(f, 0)}))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","kid":"o","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AAAAAQAB"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil {
			return
		}
		for kid, k := range keys {
			fits := false
			for _, alg := range oidcAlgorithms {
				fits = fits || keyFits(alg, k.key)
			}
			if !fits {
				t.Fatalf("kid %q: key %T fits no accepted algorithm", kid, k.key)
			}
		}
	})
}
