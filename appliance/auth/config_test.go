package auth

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestConfigDecode(t *testing.T) {
	const doc = `
certificates:
  roots: [/etc/cmg/roots.pem]
revocation:
  enabled: true
  files: [/etc/cmg/root.crl]
  on_unavailable: fail_open
  refresh_interval: 30m
tokens:
  leeway: 1m
  oidc:
    issuers: ["https://login.microsoftonline.com/{tenant}/v2.0"]
    audiences: [api://cmg-gateway]
    tenants: [72f988bf-86f1-41af-91ab-2d7cd011db47]
    jwks_url: https://login.microsoftonline.com/common/discovery/v2.0/keys
  site:
    keys:
      - {site: PS1, file: /etc/cmg/ps1.pub}
`
	cfg := DefaultConfig()
	if err := configfile.Decode("gateway.yaml", []byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"on_unavailable", cfg.Revocation.OnUnavailable, FailOpen},
		{"refresh_interval", cfg.Revocation.RefreshInterval, 30 * time.Minute},
		{"retry_interval default", cfg.Revocation.RetryInterval, time.Minute},
		{"fetch_distribution_points default", cfg.Revocation.FetchDistributionPoints, true},
		{"leeway", cfg.Tokens.Leeway, time.Minute},
		{"algorithms default", cfg.Tokens.OIDC.Algorithms[0], "RS256"},
		{"device_claim default", cfg.Tokens.OIDC.DeviceClaim, "deviceid"},
		{"tenant_claim default", cfg.Tokens.OIDC.TenantClaim, "tid"},
		{"site key", cfg.Tokens.Site.Keys[0].Site, "PS1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigDefaultsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("got %v, want the defaults valid", err)
	}
}

func TestConfigProblems(t *testing.T) {
	const doc = `
revocation:
  enabled: true
  fetch_distribution_points: false
  on_unavailable: maybe
  refresh_interval: 0s
tokens:
  leeway: -1s
  oidc:
    issuers: ["https://login.microsoftonline.com/{tenant}/v2.0"]
    algorithms: [RS256, none, HS256]
    jwks_url: https://example/keys
    jwks_file: /etc/cmg/jwks.json
  site:
    keys:
      - {site: PS1}
`
	cfg := DefaultConfig()
	err := configfile.Decode("gateway.yaml", []byte(doc), &cfg)
	var ps *configfile.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want problems", err)
	}
	var paths []string
	for _, p := range ps.List {
		paths = append(paths, p.Path)
		if p.Line == 0 {
			t.Errorf("problem %q has no line", p)
		}
	}
	for _, want := range []string{
		"revocation.enabled", "revocation.on_unavailable", "revocation.refresh_interval",
		"tokens.leeway", "tokens.oidc.algorithms[1]", "tokens.oidc.algorithms[2]", "tokens.oidc.audiences",
		"tokens.oidc.tenants", "tokens.oidc.jwks_url", "tokens.site.keys[0].file",
	} {
		if !slices.Contains(paths, want) {
			t.Errorf("no problem reported for %s; got %v", want, paths)
		}
	}
}

func TestConfigRefusesPlainHTTPJWKS(t *testing.T) {
	cfg := oidcConfig("http://idp.example/keys")
	if err := cfg.Validate(); err == nil {
		t.Error("got an http JWKS URL accepted, want an error")
	}
}
