package sitetoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrTTLTooLong is returned by Issue when the asked lifetime is over the kind's cap.
var ErrTTLTooLong = errors.New("lifetime too long")

// Issuer signs the tokens of one site with one key.
type Issuer struct {
	key  *ecdsa.PrivateKey
	kid  string
	site string
}

// Options are the per-token choices of Issue. The zero value is a token of the
// kind's default lifetime, starting now, with no audience.
type Options struct {
	// TTL is the lifetime; zero means the kind's default. A registration
	// token may not live longer than MaxRegistrationTTL.
	TTL time.Duration
	// Audience is the `aud` claim; empty leaves it out.
	Audience []string
	// Package is the `pkg` claim; required for content tokens, refused for others.
	Package string
	// Now is the issue time; zero means time.Now().
	Now time.Time
}

// NewIssuer returns an issuer for site signing with key (ECDSA P-256). An empty
// kid means the key's RFC 7638 thumbprint (KeyID).
func NewIssuer(key *ecdsa.PrivateKey, kid, site string) (*Issuer, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("sitetoken: the site key must be an ECDSA P-256 key")
	}
	if err := checkName("site", site); err != nil {
		return nil, err
	}
	if kid == "" {
		kid = KeyID(&key.PublicKey)
	}
	if err := checkName("kid", kid); err != nil {
		return nil, err
	}
	return &Issuer{key: key, kid: kid, site: site}, nil
}

// KeyID is the kid the issuer puts in its tokens.
func (i *Issuer) KeyID() string { return i.kid }

// Site is the site the issuer signs for.
func (i *Issuer) Site() string { return i.site }

// Issue signs a token of kind for subject.
func (i *Issuer) Issue(kind Kind, subject string, opts Options) (string, error) {
	ttl, err := ttlFor(kind, opts)
	if err != nil {
		return "", err
	}
	if err := checkName("subject", subject); err != nil {
		return "", err
	}
	jti, err := newID()
	if err != nil {
		return "", err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.Truncate(time.Second)
	c := &wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    IssuerFor(i.site),
			Subject:   subject,
			Audience:  jwt.ClaimStrings(opts.Audience),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        jti,
		},
		Site:    i.site,
		Kind:    kind,
		Package: opts.Package,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = i.kid
	s, err := t.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("sitetoken: sign: %w", err)
	}
	return s, nil
}

// ttlFor checks the kind-specific options and returns the token's lifetime.
func ttlFor(kind Kind, opts Options) (time.Duration, error) {
	if !kind.Valid() {
		return 0, fmt.Errorf("sitetoken: unknown token kind %q", kind)
	}
	if kind == Content && opts.Package == "" {
		return 0, errors.New("sitetoken: a content token needs a package")
	}
	if kind != Content && opts.Package != "" {
		return 0, fmt.Errorf("sitetoken: only content tokens name a package, not %s tokens", kind)
	}
	ttl := opts.TTL
	switch {
	case ttl < 0:
		return 0, fmt.Errorf("sitetoken: negative lifetime %s", ttl)
	case ttl == 0:
		ttl = kind.DefaultTTL()
	case kind == Registration && ttl > MaxRegistrationTTL:
		return 0, fmt.Errorf("sitetoken: %w: a registration token lives at most %s, not %s", ErrTTLTooLong, MaxRegistrationTTL, ttl)
	case ttl < time.Second:
		return 0, fmt.Errorf("sitetoken: lifetime %s is under a second", ttl)
	}
	return ttl, nil
}

// maxName bounds site names, key ids and subjects.
const maxName = 256

// checkName refuses empty, overlong or non-printable values of a claim or header.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("sitetoken: empty %s", what)
	}
	if len(s) > maxName {
		return fmt.Errorf("sitetoken: %s longer than %d bytes", what, maxName)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("sitetoken: %s %q has a space or control character", what, s)
		}
	}
	return nil
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sitetoken: token id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
