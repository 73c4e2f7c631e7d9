package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// maxTokenBytes bounds a bearer token. Azure AD device tokens are a few KiB.
const maxTokenBytes = 16 << 10

// Why a token is refused. The InvalidToken detail is "bearer token refused: "
// and one of these messages; the cause, for the logs, says more.
var (
	errMalformed   = errors.New("malformed token")
	errAlgorithm   = errors.New("algorithm not allowed")
	errSignature   = errors.New("bad signature")
	errExpired     = errors.New("token expired")
	errNotYetValid = errors.New("token not yet valid")
	errIssuer      = errors.New("wrong issuer")
	errAudience    = errors.New("wrong audience")
	errTenant      = errors.New("wrong tenant")
	errSite        = errors.New("wrong site")
	errKind        = errors.New("token kind not accepted here")
	errNoDevice    = errors.New("no device identity claim")
	errClaims      = errors.New("missing or invalid claim")
	// errUnknownKey ("unknown signing key") is in keyset.go.
)

var tokenReasons = []error{
	errMalformed, errAlgorithm, errUnknownKey, errSignature, errExpired, errNotYetValid,
	errIssuer, errAudience, errTenant, errSite, errKind, errNoDevice, errClaims,
}

// invalidToken is the InvalidToken error for a token refused because of err.
func invalidToken(err error) *httperror.Error {
	for _, r := range tokenReasons {
		if errors.Is(err, r) {
			return httperror.Wrap(httperror.InvalidToken, "bearer token refused: "+r.Error(), err)
		}
	}
	return httperror.Wrap(httperror.InvalidToken, "bearer token refused", err)
}

// classifyJWT turns a jwt parse error into one of the reasons. The key function
// returns reasons itself; jwt's own errors are mapped, time before audience.
func classifyJWT(err error) error {
	for _, r := range []error{errAlgorithm, errUnknownKey} {
		if errors.Is(err, r) {
			return err
		}
	}
	for _, m := range []struct{ jwt, ours error }{
		{jwt.ErrTokenMalformed, errMalformed},
		{jwt.ErrTokenSignatureInvalid, errSignature},
		{jwt.ErrTokenExpired, errExpired},
		{jwt.ErrTokenNotValidYet, errNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, errNotYetValid},
		{jwt.ErrTokenInvalidAudience, errAudience},
		{jwt.ErrTokenUnverifiable, errAlgorithm},
	} {
		if errors.Is(err, m.jwt) {
			return fmt.Errorf("%w: %v", m.ours, err)
		}
	}
	return fmt.Errorf("%w: %v", errClaims, err)
}

// classifySite maps a sitetoken refusal to one of the reasons.
func classifySite(err error) error {
	for _, m := range []struct{ site, ours error }{
		{sitetoken.ErrMalformed, errMalformed},
		{sitetoken.ErrAlgorithm, errAlgorithm},
		{sitetoken.ErrUnknownKey, errUnknownKey},
		{sitetoken.ErrSignature, errSignature},
		{sitetoken.ErrExpired, errExpired},
		{sitetoken.ErrNotYetValid, errNotYetValid},
		{sitetoken.ErrIssuer, errIssuer},
		{sitetoken.ErrAudience, errAudience},
		{sitetoken.ErrSite, errSite},
		{sitetoken.ErrKind, errKind},
	} {
		if errors.Is(err, m.site) {
			return fmt.Errorf("%w: %v", m.ours, err)
		}
	}
	return fmt.Errorf("%w: %v", errClaims, err)
}

// tokenHeader is the JOSE header of a token, read before verification only to
// choose the verifier.
type tokenHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

func decodeHeader(token string) (tokenHeader, error) {
	var h tokenHeader
	if len(token) > maxTokenBytes {
		return h, fmt.Errorf("%w: longer than %d bytes", errMalformed, maxTokenBytes)
	}
	seg, _, ok := strings.Cut(token, ".")
	if !ok || seg == "" {
		return h, fmt.Errorf("%w: not a JWT", errMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return h, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	return h, nil
}

// bearerToken returns the token of the request's `Authorization: Bearer`
// header, "" when there is no Authorization header, or an error when the
// header is there but is not one bearer token. It is the only place tokens are
// taken from: no query parameter, cookie or other header is read. (The
// reference material says CCM clients append their CCM token "to the header"
// without naming it; should it turn out to be another header, read it here.)
func bearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", httperror.New(httperror.InvalidToken, "more than one Authorization header")
	}
	scheme, tok, _ := strings.Cut(vals[0], " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", httperror.New(httperror.InvalidToken, "the Authorization header is not a bearer token")
	}
	return tok, nil
}

// deviceKinds are the site tokens accepted on role routes; content tokens are
// only for the content endpoint.
var deviceKinds = []sitetoken.Kind{sitetoken.Device, sitetoken.Registration}

// verifyToken checks a bearer token with the verifier its header points to: a
// site token when its kid is a site key or OIDC does not take its algorithm,
// otherwise an OIDC token. It returns the method it tried, for the metrics.
func (a *Authenticator) verifyToken(ctx context.Context, token string, kinds []sitetoken.Kind) (*Identity, Method, error) {
	if a.site == nil && a.oidc == nil {
		return nil, methodNone, httperror.New(httperror.InvalidToken, "this gateway accepts no bearer tokens")
	}
	h, herr := decodeHeader(token)
	if a.site != nil && (a.oidc == nil || a.site.HasKey(h.Kid) || !a.oidc.accepts(h.Alg)) {
		if herr != nil {
			return nil, SiteToken, invalidToken(herr)
		}
		c, err := a.site.Verify(token, kinds...)
		if err != nil {
			return nil, SiteToken, invalidToken(classifySite(err))
		}
		return siteIdentity(c), SiteToken, nil
	}
	if herr != nil {
		return nil, OIDC, invalidToken(herr)
	}
	if slices.Contains(kinds, sitetoken.Content) {
		return nil, OIDC, invalidToken(fmt.Errorf("%w: the content endpoint takes site content tokens", errKind))
	}
	id, err := a.oidc.verify(ctx, token, h)
	if err != nil {
		return nil, OIDC, invalidToken(err)
	}
	return id, OIDC, nil
}

func siteIdentity(c *sitetoken.Claims) *Identity {
	return &Identity{
		Method:  SiteToken,
		Device:  c.Subject,
		Subject: c.Subject,
		Issuer:  c.Issuer,
		Claims:  c.Map(),
		Expires: c.Expires,
	}
}
