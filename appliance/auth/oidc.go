package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oidcVerifier checks OIDC/JWT bearer tokens (the Azure AD case): signature by a
// key of the issuer's JWKS with a configured algorithm, then issuer, audience,
// time, tenant and the device identity claim.
type oidcVerifier struct {
	cfg    OIDCConfig
	keys   *keySet
	parser *jwt.Parser
}

func newOIDCVerifier(cfg OIDCConfig, leeway time.Duration, now func() time.Time, client *http.Client, log *slog.Logger) (*oidcVerifier, error) {
	ks := &keySet{
		url: cfg.JWKSURL, file: cfg.JWKSFile, client: client, timeout: cfg.FetchTimeout,
		refreshEvery: cfg.RefreshInterval, minGap: cfg.MinRefreshInterval, now: now,
		log: log.With("jwks", cfg.JWKSURL+cfg.JWKSFile),
	}
	if err := ks.loadInitial(); err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	return &oidcVerifier{
		cfg:  cfg,
		keys: ks,
		parser: jwt.NewParser(
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
	}, nil
}

// accepts reports whether alg is one of the configured algorithms.
func (o *oidcVerifier) accepts(alg string) bool { return slices.Contains(o.cfg.Algorithms, alg) }

// verify checks token, whose header h has been decoded already.
func (o *oidcVerifier) verify(ctx context.Context, token string, h tokenHeader) (*Identity, error) {
	if !o.accepts(h.Alg) {
		return nil, fmt.Errorf("%w: %q is not configured", errAlgorithm, h.Alg)
	}
	claims := jwt.MapClaims{}
	_, err := o.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return o.keyFor(ctx, t)
	})
	if err != nil {
		return nil, classifyJWT(err)
	}
	// The audience is checked here rather than by the parser so that a token
	// with no aud at all is "wrong audience" too.
	if aud, err := claims.GetAudience(); err != nil || !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(o.cfg.Audiences, a) }) {
		return nil, fmt.Errorf("%w: %q", errAudience, aud)
	}
	tenant, _ := claims[o.cfg.TenantClaim].(string)
	iss, _ := claims["iss"].(string)
	if !o.issuerOK(iss, tenant) {
		return nil, fmt.Errorf("%w: %q", errIssuer, iss)
	}
	if len(o.cfg.Tenants) > 0 && !slices.ContainsFunc(o.cfg.Tenants, func(t string) bool { return strings.EqualFold(t, tenant) }) {
		return nil, fmt.Errorf("%w: %q", errTenant, tenant)
	}
	device, _ := claims[o.cfg.DeviceClaim].(string)
	if device == "" {
		return nil, fmt.Errorf("%w: no %s claim", errNoDevice, o.cfg.DeviceClaim)
	}
	sub, _ := claims["sub"].(string)
	var exp time.Time
	if d, err := claims.GetExpirationTime(); err == nil && d != nil {
		exp = d.Time
	}
	return &Identity{Method: OIDC, Device: device, Subject: sub, Issuer: iss, Tenant: tenant, Claims: claims, Expires: exp}, nil
}

// keyFor is the jwt key function: the header's algorithm must be configured
// (checked before, and again here on the parsed method), the kid known, and the
// key made for that algorithm.
func (o *oidcVerifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !o.accepts(alg) {
		return nil, fmt.Errorf("%w: %q is not configured", errAlgorithm, alg)
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid header", errUnknownKey)
	}
	k, err := o.keys.get(ctx, kid)
	if err != nil {
		return nil, err
	}
	if (k.alg != "" && k.alg != alg) || !keyFits(alg, k.key) {
		return nil, fmt.Errorf("%w: %s does not fit key %q", errAlgorithm, alg, kid)
	}
	return k.key, nil
}

// issuerOK matches iss against the configured issuers, replacing {tenant} by
// the token's tenant.
func (o *oidcVerifier) issuerOK(iss, tenant string) bool {
	if iss == "" {
		return false
	}
	for _, want := range o.cfg.Issuers {
		if strings.Contains(want, TenantPlaceholder) {
			if tenant == "" {
				continue
			}
			want = strings.ReplaceAll(want, TenantPlaceholder, tenant)
		}
		if iss == want {
			return true
		}
	}
	return false
}

// refresh does the key set's due refresh.
func (o *oidcVerifier) refresh(ctx context.Context) error { return o.keys.refresh(ctx) }
