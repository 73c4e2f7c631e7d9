package roles

import (
	"context"
	"net/http"
	"testing"

	"github.com/cmg-gateway/cmg/sitetoken"
)

func TestSiteTokenIssuer(t *testing.T) {
	key, err := sitetoken.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := sitetoken.NewIssuer(key, "", "PS1")
	if err != nil {
		t.Fatal(err)
	}
	pub := sitetoken.Key{ID: iss.KeyID(), Site: "PS1", Public: &key.PublicKey}
	issue, err := SiteTokenIssuer(iss, &pub)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := sitetoken.NewVerifier([]sitetoken.Key{pub}, sitetoken.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := sitetoken.GenerateKey()
	otherIss, _ := sitetoken.NewIssuer(other, iss.KeyID(), "PS1")
	mustIssue := func(i *sitetoken.Issuer, kind sitetoken.Kind, sub string) string {
		tok, err := i.Issue(kind, sub, sitetoken.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	gateway := func(method, device string, extra ...string) http.Header {
		h := http.Header{}
		if method != "" {
			h.Set(headerAuthMethod, method)
			h.Set(headerDeviceID, device)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	tests := []struct {
		name    string
		header  http.Header
		body    string
		wantSub string // "" means refused
	}{
		{"registration", gateway("site_token", "bulk-registration", "CCMClientID", "GUID:1"), mustIssue(iss, sitetoken.Registration, "bulk-registration"), "GUID:1"},
		{"registration without a client id", gateway("site_token", "bulk-registration"), mustIssue(iss, sitetoken.Registration, "bulk-registration"), ""},
		{"renewal", gateway("site_token", "GUID:2", "CCMClientID", "GUID:9"), mustIssue(iss, sitetoken.Device, "GUID:2"), "GUID:2"},
		{"certificate device", gateway("certificate", "ws042"), "", "ws042"},
		{"not through the gateway", gateway("", ""), mustIssue(iss, sitetoken.Device, "GUID:2"), ""},
		{"token of another key", gateway("site_token", "GUID:3"), mustIssue(otherIss, sitetoken.Device, "GUID:3"), ""},
		{"content token", gateway("site_token", "GUID:4"), func() string {
			tok, _ := iss.Issue(sitetoken.Content, "GUID:4", sitetoken.Options{Package: "PS100001"})
			return tok
		}(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, life, err := issue(context.Background(), TokenRequest{Header: tt.header, Body: []byte(tt.body)})
			if tt.wantSub == "" {
				if err == nil {
					t.Fatalf("got a token, want a refusal")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := ver.Verify(tok, sitetoken.Device)
			if err != nil {
				t.Fatalf("the issued token does not verify as a device token: %v", err)
			}
			if c.Subject != tt.wantSub || life != sitetoken.DefaultDeviceTTL {
				t.Errorf("got a token for %q living %s, want a device token for %q living %s", c.Subject, life, tt.wantSub, sitetoken.DefaultDeviceTTL)
			}
		})
	}
}
