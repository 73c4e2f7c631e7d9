package sitetoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The reasons Verify refuses a token. Verify's errors wrap exactly one of them.
var (
	ErrMalformed   = errors.New("malformed token")
	ErrAlgorithm   = errors.New("algorithm not allowed")
	ErrUnknownKey  = errors.New("unknown signing key")
	ErrSignature   = errors.New("bad signature")
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token not yet valid")
	ErrIssuer      = errors.New("wrong issuer")
	ErrAudience    = errors.New("wrong audience")
	ErrSite        = errors.New("wrong site")
	ErrKind        = errors.New("wrong token kind")
	ErrClaims      = errors.New("missing or invalid claim")
)

// MaxTokenBytes bounds the tokens Verify parses. Site tokens are a few hundred bytes.
const MaxTokenBytes = 8 << 10

// Key is a site's public key.
type Key struct {
	// ID is the kid that names the key in token headers.
	ID string
	// Site is the site the key signs for: a token signed by it must carry this
	// `site` claim, so one site's key cannot speak for another site.
	Site   string
	Public *ecdsa.PublicKey
}

// VerifyOptions tune a Verifier. The zero value checks no audience, allows no
// clock skew and uses time.Now.
type VerifyOptions struct {
	// Audience, when set, must be one of the token's `aud` values.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks site tokens against a set of site public keys.
type Verifier struct {
	keys   map[string]Key
	opts   VerifyOptions
	parser *jwt.Parser
}

// NewVerifier returns a verifier trusting keys.
func NewVerifier(keys []Key, opts VerifyOptions) (*Verifier, error) {
	v := &Verifier{keys: make(map[string]Key, len(keys)), opts: opts}
	var errs []error
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		if _, dup := v.keys[k.ID]; dup {
			errs = append(errs, fmt.Errorf("key %d: duplicate kid %q", i, k.ID))
			continue
		}
		v.keys[k.ID] = k
	}
	if opts.Leeway < 0 {
		errs = append(errs, fmt.Errorf("negative leeway %s", opts.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sitetoken: %w", err)
	}
	if v.opts.Now == nil {
		v.opts.Now = time.Now
	}
	v.parser = jwt.NewParser(
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(v.opts.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

func checkKey(k Key) error {
	if err := checkName("kid", k.ID); err != nil {
		return err
	}
	if err := checkName("site", k.Site); err != nil {
		return err
	}
	if k.Public == nil || k.Public.Curve != elliptic.P256() {
		return errors.New("not an ECDSA P-256 public key")
	}
	return nil
}

// HasKey reports whether kid names one of the verifier's keys, so a caller that
// also accepts other tokens can tell which verifier a token is for.
func (v *Verifier) HasKey(kid string) bool {
	_, ok := v.keys[kid]
	return ok
}

// Verify checks token and returns its claims. When kinds are given, the token
// must be of one of them. A refusal wraps one of the Err* reasons.
func (v *Verifier) Verify(token string, kinds ...Kind) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	var wc wireClaims
	var key Key
	_, err := v.parser.ParseWithClaims(token, &wc, func(t *jwt.Token) (any, error) {
		k, err := v.keyFor(t)
		key = k
		return k.Public, err
	})
	if err != nil {
		return nil, classify(err)
	}
	c := wc.claims(key.ID)
	if err := v.checkClaims(c, key, kinds); err != nil {
		return nil, err
	}
	return c, nil
}

// keyFor is the jwt key function: ES256 exactly, and a known kid.
func (v *Verifier) keyFor(t *jwt.Token) (Key, error) {
	if alg, _ := t.Header["alg"].(string); alg != jwt.SigningMethodES256.Alg() || t.Method != jwt.SigningMethodES256 {
		return Key{}, fmt.Errorf("%w: %q (site tokens are ES256)", ErrAlgorithm, alg)
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return Key{}, fmt.Errorf("%w: no kid header", ErrUnknownKey)
	}
	k, ok := v.keys[kid]
	if !ok {
		return Key{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	return k, nil
}

// checkClaims checks what the jwt parser does not: site, issuer, kind, subject,
// package and audience.
func (v *Verifier) checkClaims(c *Claims, key Key, kinds []Kind) error {
	switch {
	case c.Site != key.Site:
		return fmt.Errorf("%w: the token is for site %q, its key signs for %q", ErrSite, c.Site, key.Site)
	case c.Issuer != IssuerFor(c.Site):
		return fmt.Errorf("%w: %q", ErrIssuer, c.Issuer)
	case !c.Kind.Valid():
		return fmt.Errorf("%w: unknown kind %q", ErrClaims, c.Kind)
	case len(kinds) > 0 && !slices.Contains(kinds, c.Kind):
		return fmt.Errorf("%w: a %s token is not accepted here", ErrKind, c.Kind)
	case checkName("sub", c.Subject) != nil:
		return fmt.Errorf("%w: no valid sub", ErrClaims)
	case c.ID == "":
		return fmt.Errorf("%w: no jti", ErrClaims)
	case c.IssuedAt.IsZero():
		return fmt.Errorf("%w: no iat", ErrClaims)
	case (c.Kind == Content) != (c.Package != ""):
		return fmt.Errorf("%w: pkg is required on content tokens and only there", ErrClaims)
	case v.opts.Audience != "" && !slices.Contains(c.Audience, v.opts.Audience):
		return fmt.Errorf("%w: want %q", ErrAudience, v.opts.Audience)
	}
	return nil
}

// classify turns a jwt parse error into one of the Err* reasons.
func classify(err error) error {
	for _, reason := range []error{ErrAlgorithm, ErrUnknownKey} {
		if errors.Is(err, reason) {
			return err
		}
	}
	for _, m := range []struct{ jwt, ours error }{
		{jwt.ErrTokenMalformed, ErrMalformed},
		{jwt.ErrTokenSignatureInvalid, ErrSignature},
		{jwt.ErrTokenExpired, ErrExpired},
		{jwt.ErrTokenNotValidYet, ErrNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, ErrNotYetValid},
		{jwt.ErrTokenRequiredClaimMissing, ErrClaims},
		{jwt.ErrTokenUnverifiable, ErrAlgorithm},
	} {
		if errors.Is(err, m.jwt) {
			return fmt.Errorf("%w: %v", m.ours, err)
		}
	}
	return fmt.Errorf("%w: %v", ErrClaims, err)
}
