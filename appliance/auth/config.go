package auth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

// Config is the device authentication section of the gateway configuration.
type Config struct {
	Certificates CertConfig       `yaml:"certificates"`
	Revocation   RevocationConfig `yaml:"revocation"`
	Tokens       TokenConfig      `yaml:"tokens"`
}

// DefaultConfig is the section with every default filled in: no client
// certificates, no tokens, revocation checking off.
func DefaultConfig() Config {
	return Config{Revocation: DefaultRevocationConfig(), Tokens: DefaultTokenConfig()}
}

// Validate reports every problem of the section.
func (c Config) Validate() error {
	var ps configfile.Problems
	ps.Merge("certificates", c.Certificates.Validate())
	ps.Merge("revocation", c.Revocation.Validate())
	ps.Merge("tokens", c.Tokens.Validate())
	if c.Revocation.Enabled && len(c.Certificates.Roots) == 0 {
		ps.Addf("revocation.enabled", "revocation checking needs client certificates (certificates.roots)")
	}
	return ps.Err()
}

// The rules for a certificate whose revocation status cannot be established.
const (
	FailClosed = "fail_closed"
	FailOpen   = "fail_open"
)

// RevocationConfig is "verify client certificate revocation": CRLs from files
// and from the certificates' CRL distribution points, cached and refreshed.
type RevocationConfig struct {
	// Enabled turns the check on. Off by default: turn it on only when the CRLs
	// are reachable from the gateway (files, or distribution points on the internet).
	Enabled bool `yaml:"enabled"`
	// Files are CRL files (PEM "X509 CRL" or DER), reloaded when they change.
	// A file CRL covers its issuer: that issuer's distribution points are not fetched.
	Files []string `yaml:"files,omitempty"`
	// FetchDistributionPoints fetches the http/https CRL distribution points of
	// certificates whose issuer no file covers. Default true.
	FetchDistributionPoints bool `yaml:"fetch_distribution_points"`
	// OnUnavailable is what happens when no fresh, correctly signed CRL can be had
	// for a certificate: fail_closed (default) refuses the device, fail_open lets it in.
	OnUnavailable string `yaml:"on_unavailable"`
	// RefreshInterval is the longest a fetched CRL is used before it is fetched
	// again; a CRL is also refetched shortly before its nextUpdate. Default 1h.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// RetryInterval is the least time between two attempts to fetch one CRL
	// after a failure, so devices cannot make the gateway hammer a dead server. Default 1m.
	RetryInterval time.Duration `yaml:"retry_interval"`
	// FetchTimeout bounds one fetch. Default 10s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// MaxSizeBytes bounds one CRL. Default 10 MiB.
	MaxSizeBytes int64 `yaml:"max_size_bytes"`
}

// DefaultRevocationConfig is the revocation section's defaults.
func DefaultRevocationConfig() RevocationConfig {
	return RevocationConfig{
		FetchDistributionPoints: true,
		OnUnavailable:           FailClosed,
		RefreshInterval:         time.Hour,
		RetryInterval:           time.Minute,
		FetchTimeout:            10 * time.Second,
		MaxSizeBytes:            10 << 20,
	}
}

// Validate reports every problem of the section.
func (c RevocationConfig) Validate() error {
	var ps configfile.Problems
	for i, f := range c.Files {
		if f == "" {
			ps.Addf(fmt.Sprintf("files[%d]", i), "empty file name")
		}
	}
	if c.OnUnavailable != FailClosed && c.OnUnavailable != FailOpen {
		ps.Addf("on_unavailable", "must be %s or %s, not %q", FailClosed, FailOpen, c.OnUnavailable)
	}
	positive(&ps, "refresh_interval", c.RefreshInterval)
	positive(&ps, "retry_interval", c.RetryInterval)
	positive(&ps, "fetch_timeout", c.FetchTimeout)
	if c.MaxSizeBytes <= 0 {
		ps.Addf("max_size_bytes", "must be positive, not %d", c.MaxSizeBytes)
	}
	if c.Enabled && len(c.Files) == 0 && !c.FetchDistributionPoints {
		ps.Addf("enabled", "no CRL source: give files or turn on fetch_distribution_points")
	}
	return ps.Err()
}

// TokenConfig says which bearer tokens identify devices.
type TokenConfig struct {
	// Leeway is the clock skew allowed on every token's exp, nbf and iat. Default 30s.
	Leeway time.Duration `yaml:"leeway"`
	// OIDC is the OIDC/JWT issuer (Azure AD). Off while it names no issuer.
	OIDC OIDCConfig `yaml:"oidc"`
	// Site is the site-issued tokens (`cmg token issue`). Off while it names no key.
	Site SiteTokenConfig `yaml:"site"`
}

// DefaultTokenConfig is the tokens section's defaults.
func DefaultTokenConfig() TokenConfig {
	return TokenConfig{Leeway: 30 * time.Second, OIDC: DefaultOIDCConfig()}
}

// Validate reports every problem of the section.
func (c TokenConfig) Validate() error {
	var ps configfile.Problems
	if c.Leeway < 0 || c.Leeway > 10*time.Minute {
		ps.Addf("leeway", "must be between 0s and 10m, not %s", c.Leeway)
	}
	ps.Merge("oidc", c.OIDC.Validate())
	ps.Merge("site", c.Site.Validate())
	return ps.Err()
}

// TenantPlaceholder in an OIDC issuer stands for the token's tenant claim, as in
// Azure AD's multi-tenant issuer https://login.microsoftonline.com/{tenant}/v2.0.
const TenantPlaceholder = "{tenant}"

// OIDCConfig is an OIDC/JWT issuer whose tokens identify devices.
type OIDCConfig struct {
	// Issuers are the accepted `iss` values; empty turns OIDC tokens off. One
	// may contain {tenant}, replaced by the token's tenant claim (then Tenants
	// must list the allowed tenants).
	Issuers []string `yaml:"issuers,omitempty"`
	// Audiences are the accepted `aud` values (the gateway's application ID
	// URI or client ID); required.
	Audiences []string `yaml:"audiences,omitempty"`
	// JWKSURL (https) or JWKSFile give the issuer's signing keys; exactly one.
	// The URL is fetched on a schedule and when a token names an unknown key;
	// the file is reloaded when it changes.
	JWKSURL  string `yaml:"jwks_url,omitempty"`
	JWKSFile string `yaml:"jwks_file,omitempty"`
	// CAFiles are PEM files of the roots the JWKS URL's certificate chains to,
	// for an issuer whose HTTPS certificate is not from a public CA (ADFS or a
	// test issuer); empty means the system roots.
	CAFiles []string `yaml:"ca_files,omitempty"`
	// Algorithms are the accepted `alg` values. Default [RS256]. none and the
	// HMAC algorithms are never accepted.
	Algorithms []string `yaml:"algorithms"`
	// TenantClaim names the tenant claim. Default "tid" (Azure AD).
	TenantClaim string `yaml:"tenant_claim"`
	// Tenants are the allowed tenants; empty accepts any (or none).
	Tenants []string `yaml:"tenants,omitempty"`
	// DeviceClaim names the claim holding the device identity. Default
	// "deviceid" (Azure AD device tokens).
	DeviceClaim string `yaml:"device_claim"`
	// RefreshInterval is how often the JWKS URL is fetched (or the file checked
	// for a change, which happens at least every 10s anyway). Default 1h.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MinRefreshInterval is the least time between two JWKS fetches, so tokens
	// naming unknown keys cannot make the gateway hammer the issuer. Default 1m.
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval"`
	// FetchTimeout bounds one JWKS fetch. Default 10s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
}

// DefaultOIDCConfig is the oidc section's defaults (off).
func DefaultOIDCConfig() OIDCConfig {
	return OIDCConfig{
		Algorithms:         []string{"RS256"},
		TenantClaim:        "tid",
		DeviceClaim:        "deviceid",
		RefreshInterval:    time.Hour,
		MinRefreshInterval: time.Minute,
		FetchTimeout:       10 * time.Second,
	}
}

// Enabled reports whether OIDC tokens are accepted.
func (c OIDCConfig) Enabled() bool { return len(c.Issuers) > 0 }

// oidcAlgorithms are the algorithms an OIDC section may accept: asymmetric only.
var oidcAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate reports every problem of the section.
func (c OIDCConfig) Validate() error {
	var ps configfile.Problems
	positive(&ps, "refresh_interval", c.RefreshInterval)
	positive(&ps, "min_refresh_interval", c.MinRefreshInterval)
	positive(&ps, "fetch_timeout", c.FetchTimeout)
	for i, a := range c.Algorithms {
		if !slices.Contains(oidcAlgorithms, a) {
			ps.Addf(fmt.Sprintf("algorithms[%d]", i), "%q is not accepted (one of %s)", a, strings.Join(oidcAlgorithms, ", "))
		}
	}
	if !c.Enabled() {
		return ps.Err()
	}
	templated := false
	for i, iss := range c.Issuers {
		if iss == "" {
			ps.Addf(fmt.Sprintf("issuers[%d]", i), "empty issuer")
		}
		templated = templated || strings.Contains(iss, TenantPlaceholder)
	}
	if templated && len(c.Tenants) == 0 {
		ps.Addf("tenants", "an issuer with %s needs the list of allowed tenants", TenantPlaceholder)
	}
	if len(c.Audiences) == 0 {
		ps.Addf("audiences", "required: without it any token of the issuer would do")
	}
	if len(c.Algorithms) == 0 {
		ps.Addf("algorithms", "required")
	}
	switch {
	case (c.JWKSURL == "") == (c.JWKSFile == ""):
		ps.Addf("jwks_url", "give exactly one of jwks_url and jwks_file")
	case c.JWKSURL != "":
		if u, err := url.Parse(c.JWKSURL); err != nil || u.Scheme != "https" || u.Host == "" {
			ps.Addf("jwks_url", "must be an https URL, not %q", c.JWKSURL)
		}
	}
	if len(c.CAFiles) > 0 && c.JWKSURL == "" {
		ps.Addf("ca_files", "only used with jwks_url")
	}
	if c.DeviceClaim == "" {
		ps.Addf("device_claim", "required")
	}
	if c.TenantClaim == "" && (len(c.Tenants) > 0 || templated) {
		ps.Addf("tenant_claim", "required when tenants are checked")
	}
	return ps.Err()
}

// SiteTokenConfig is the site-issued tokens.
type SiteTokenConfig struct {
	// Keys are the site public keys; empty turns site tokens off.
	Keys []SiteKeyConfig `yaml:"keys,omitempty"`
	// Audience, when set, must be one of the tokens' `aud` values.
	Audience string `yaml:"audience,omitempty"`
}

// SiteKeyConfig is one site public key.
type SiteKeyConfig struct {
	// Site is the site the key signs for.
	Site string `yaml:"site"`
	// File is the PEM public key written by `cmg token keygen`.
	File string `yaml:"file"`
	// KeyID is the kid; empty means the key's RFC 7638 thumbprint (what
	// `cmg token keygen` prints and `cmg token issue` uses by default).
	KeyID string `yaml:"kid,omitempty"`
}

// Validate reports every problem of the section.
func (c SiteTokenConfig) Validate() error {
	var ps configfile.Problems
	for i, k := range c.Keys {
		p := fmt.Sprintf("keys[%d]", i)
		if k.Site == "" {
			ps.Addf(p+".site", "required")
		}
		if k.File == "" {
			ps.Addf(p+".file", "required")
		}
	}
	return ps.Err()
}

func positive(ps *configfile.Problems, key string, d time.Duration) {
	if d <= 0 {
		ps.Addf(key, "must be positive, not %s", d)
	}
}
