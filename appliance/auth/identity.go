// Package auth authenticates devices at the gateway: client certificates chained to
// configured roots and intermediates and checked against CRLs, and bearer tokens
// (OIDC/JWT from a JWKS, and site tokens of package sitetoken). It yields the verified
// device Identity that keys rate limits, counts and notifications, and that the
// gateway passes to connectors in its own headers (DESIGN section 6).
package auth

import (
	"context"
	"crypto/x509"
	"strings"
	"sync"
	"time"
)

// Method is how a device proved who it is.
type Method string

// The authentication methods. They are also the `method` label of
// cmg_gateway_auth_total and the auth method policies match on.
const (
	Certificate Method = "certificate"
	SiteToken   Method = "site_token"
	OIDC        Method = "oidc"
)

// Mode is what a route prefix accepts (DESIGN section 6).
type Mode int

const (
	// Mutual is /CCM_Proxy_MutualAuth/...: a client certificate, or a valid token
	// when no certificate is presented.
	Mutual Mode = iota
	// Server is /CCM_Proxy_ServerAuth/...: a token.
	Server
)

func (m Mode) String() string {
	if m == Server {
		return "server_auth"
	}
	return "mutual_auth"
}

// Identity is a verified device.
type Identity struct {
	Method Method
	// Device is the device identity: the certificate's subject CN lower-cased (or
	// the configured SAN), the site token's sub, or the configured OIDC claim.
	// Never logged in clear.
	Device string
	// Subject and Issuer are the certificate's subject and issuer DNs, or the
	// token's sub and iss.
	Subject string
	Issuer  string
	// Tenant is the token's tenant claim, when there is one.
	Tenant string
	// Claims are the token's claims (nil for certificates).
	Claims map[string]any
	// Chain is the verified certificate chain, leaf first (nil for tokens).
	Chain []*x509.Certificate
	// Expires is when the credential stops being valid.
	Expires time.Time
}

// connCacheKey keys the per-connection cache in a context.
type connCacheKey struct{}

// connCache remembers the result of verifying a TLS connection's client
// certificate chain, so keep-alive requests do not verify it again.
type connCache struct {
	once sync.Once
	id   *Identity
	err  error
}

// WithConnCache returns a context carrying a fresh per-connection cache. The
// gateway installs it with http.Server.ConnContext.
func WithConnCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, connCacheKey{}, &connCache{})
}

func connCacheFrom(ctx context.Context) *connCache {
	c, _ := ctx.Value(connCacheKey{}).(*connCache)
	return c
}

// deviceFromCN is the device identity of a certificate subject CN.
func deviceFromCN(cn string) string { return strings.ToLower(strings.TrimSpace(cn)) }
