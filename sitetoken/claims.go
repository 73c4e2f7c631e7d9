package sitetoken

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the verified contents of a site token.
type Claims struct {
	// KeyID is the `kid` header: the site key that signed the token.
	KeyID string
	// Issuer is `iss`, always IssuerFor(Site).
	Issuer string
	// Subject is `sub`: the device identity for device and content tokens, a
	// label for registration tokens.
	Subject  string
	Audience []string
	Site     string
	Kind     Kind
	// Package is the `pkg` claim of a content token, empty otherwise.
	Package   string
	IssuedAt  time.Time
	NotBefore time.Time
	Expires   time.Time
	// ID is `jti`, unique per token.
	ID string
}

// RenewDue reports whether a device token is old enough to be renewed at now
// (DeviceRenewAfter past its issue time). Other kinds are never renewed.
func (c *Claims) RenewDue(now time.Time) bool {
	return c.Kind == Device && !now.Before(c.IssuedAt.Add(DeviceRenewAfter))
}

// Map returns the claims as a JWT claim map (times as Unix seconds), the form
// policies match on.
func (c *Claims) Map() map[string]any {
	m := map[string]any{
		"iss":  c.Issuer,
		"sub":  c.Subject,
		"site": c.Site,
		"kind": string(c.Kind),
		"iat":  c.IssuedAt.Unix(),
		"nbf":  c.NotBefore.Unix(),
		"exp":  c.Expires.Unix(),
		"jti":  c.ID,
	}
	if len(c.Audience) > 0 {
		aud := make([]any, len(c.Audience))
		for i, a := range c.Audience {
			aud[i] = a
		}
		m["aud"] = aud
	}
	if c.Package != "" {
		m["pkg"] = c.Package
	}
	return m
}

// IssuerFor is the `iss` of the tokens of a site.
func IssuerFor(site string) string { return "urn:cmg:site:" + site }

// wireClaims is the JSON payload of a site token.
type wireClaims struct {
	jwt.RegisteredClaims
	Site    string `json:"site"`
	Kind    Kind   `json:"kind"`
	Package string `json:"pkg,omitempty"`
}

func (w *wireClaims) claims(kid string) *Claims {
	return &Claims{
		KeyID:     kid,
		Issuer:    w.Issuer,
		Subject:   w.Subject,
		Audience:  []string(w.Audience),
		Site:      w.Site,
		Kind:      w.Kind,
		Package:   w.Package,
		IssuedAt:  timeOf(w.IssuedAt),
		NotBefore: timeOf(w.NotBefore),
		Expires:   timeOf(w.ExpiresAt),
		ID:        w.ID,
	}
}

func timeOf(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time
}
