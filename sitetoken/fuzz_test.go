package sitetoken

import (
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to Verify. The verifier trusts a key that
// signed none of the seeds (the seeds are signed by another key under the same
// kid), so no input may ever be accepted, and none may panic.
func FuzzVerify(f *testing.F) {
	signer := mustKey(f)
	iss := mustIssuer(f, signer, "k1", "PS1")
	for _, k := range Kinds {
		opts := Options{Now: t0}
		if k == Content {
			opts.Package = "PS100001"
		}
		tok, err := iss.Issue(k, "device-1", opts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.e30.AAAA")
	trusted := mustKey(f)
	v := mustVerifier(f, VerifyOptions{Now: at(t0.Add(time.Minute))}, Key{ID: "k1", Site: "PS1", Public: &trusted.PublicKey})
	f.Fuzz(func(t *testing.T, token string) {
		if c, err := v.Verify(token); err == nil {
			t.Fatalf("accepted %q with claims %+v", token, c)
		}
	})
}
