package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// Options are the parts an Authenticator is given rather than configured with.
// The zero value (or a nil *Options) means time.Now, no logs, no metrics and
// an HTTP client that honours HTTPS_PROXY.
type Options struct {
	// Now is the clock for certificate, token and CRL validity and refresh schedules.
	Now func() time.Time
	// Logger receives JWKS and CRL refresh problems.
	Logger *slog.Logger
	// Metrics receives authentication counts and CRL health; nil records nothing.
	Metrics *Metrics
	// HTTPClient fetches JWKS documents and CRLs; per-fetch timeouts come from
	// the configuration.
	HTTPClient *http.Client
}

// refreshTick is how often Run looks for due refreshes: each JWKS and CRL has
// its own schedule; the tick only bounds how late a due one is noticed and
// how soon a changed file is reloaded.
const refreshTick = 10 * time.Second

// Authenticator decides who a device is.
type Authenticator struct {
	certs   *CertVerifier
	revoc   *revocation
	site    *sitetoken.Verifier
	oidc    *oidcVerifier
	metrics *Metrics
}

// New builds an Authenticator from its configuration, loading every file it
// names (roots, CRL files, site keys, a JWKS file) and reporting every problem
// at once. It starts nothing: Run keeps JWKS and CRLs fresh.
func New(cfg Config, opts *Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := withDefaults(opts)
	a := &Authenticator{metrics: o.Metrics}
	var errs []error
	var err error
	if a.certs, err = NewCertVerifier(cfg.Certificates, o.Now); err != nil {
		errs = append(errs, err)
	}
	if cfg.Revocation.Enabled {
		if a.revoc, err = newRevocation(cfg.Revocation, &o); err != nil {
			errs = append(errs, err)
		}
	}
	if len(cfg.Tokens.Site.Keys) > 0 {
		if a.site, err = newSiteVerifier(cfg.Tokens, o.Now); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Tokens.OIDC.Enabled() {
		client := o.HTTPClient
		if len(cfg.Tokens.OIDC.CAFiles) > 0 {
			client, err = clientWithRoots(client, cfg.Tokens.OIDC.CAFiles)
		}
		if err == nil {
			a.oidc, err = newOIDCVerifier(cfg.Tokens.OIDC, cfg.Tokens.Leeway, o.Now, client, o.Logger)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return a, nil
}

func withDefaults(opts *Options) Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return o
}

// clientWithRoots is a copy of c that trusts only the roots in files.
func clientWithRoots(c *http.Client, files []string) (*http.Client, error) {
	roots, err := LoadPool(files)
	if err != nil {
		return nil, fmt.Errorf("oidc: ca_files: %w", err)
	}
	var tr *http.Transport
	if t, ok := c.Transport.(*http.Transport); ok {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = roots
	out := *c
	out.Transport = tr
	return &out, nil
}

func newSiteVerifier(cfg TokenConfig, now func() time.Time) (*sitetoken.Verifier, error) {
	keys := make([]sitetoken.Key, 0, len(cfg.Site.Keys))
	var errs []error
	for _, k := range cfg.Site.Keys {
		pub, err := sitetoken.LoadPublicKey(k.File)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kid := k.KeyID
		if kid == "" {
			kid = sitetoken.KeyID(pub)
		}
		keys = append(keys, sitetoken.Key{ID: kid, Site: k.Site, Public: pub})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("site tokens: %w", err)
	}
	return sitetoken.NewVerifier(keys, sitetoken.VerifyOptions{Audience: cfg.Site.Audience, Leeway: cfg.Leeway, Now: now})
}

// Certificates returns the certificate verifier, or nil when client certificates
// are not configured.
func (a *Authenticator) Certificates() *CertVerifier { return a.certs }

// AcceptsTokens reports whether bearer tokens of any kind are configured.
func (a *Authenticator) AcceptsTokens() bool { return a.site != nil || a.oidc != nil }

// Authenticate returns the identity of the device that sent r for a route of the
// given mode, or an *httperror.Error saying why not.
//
// Mutual: the client certificate, verified once per connection and checked for
// revocation on every request; when none was presented, a bearer token.
// Server: a bearer token. Tokens are taken only from `Authorization: Bearer`;
// site tokens of kind device or registration, or OIDC tokens, are accepted.
func (a *Authenticator) Authenticate(r *http.Request, mode Mode) (*Identity, error) {
	if mode == Mutual && a.certs != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return a.certificate(r)
	}
	tok, err := bearerToken(r)
	if err != nil {
		a.metrics.countAuth(methodNone, resultFailure)
		return nil, err
	}
	if tok == "" {
		a.metrics.countAuth(methodNone, resultMissing)
		if mode == Server {
			return nil, httperror.New(httperror.InvalidToken, "this route requires a bearer token")
		}
		if !a.AcceptsTokens() {
			return nil, httperror.New(httperror.ClientCertificateRequired, "a client certificate is required")
		}
		return nil, httperror.New(httperror.ClientCertificateRequired, "a client certificate or a bearer token is required")
	}
	return a.token(r.Context(), tok, deviceKinds)
}

// AuthenticateContent returns the identity of a content download: a site
// token of kind content (its `pkg` claim is in Identity.Claims). Content tokens
// are accepted nowhere else.
func (a *Authenticator) AuthenticateContent(r *http.Request) (*Identity, error) {
	tok, err := bearerToken(r)
	if err != nil {
		a.metrics.countAuth(methodNone, resultFailure)
		return nil, err
	}
	if tok == "" {
		a.metrics.countAuth(methodNone, resultMissing)
		return nil, httperror.New(httperror.InvalidToken, "a content token is required")
	}
	return a.token(r.Context(), tok, []sitetoken.Kind{sitetoken.Content})
}

func (a *Authenticator) token(ctx context.Context, tok string, kinds []sitetoken.Kind) (*Identity, error) {
	id, method, err := a.verifyToken(ctx, tok, kinds)
	if err != nil {
		a.metrics.countAuth(method, resultFailure)
		return nil, err
	}
	a.metrics.countAuth(method, resultSuccess)
	return id, nil
}

// certificate verifies the presented chain once per connection (when the
// gateway installed WithConnCache) and checks revocation on every request, so
// a revocation takes effect on long keep-alive connections too.
func (a *Authenticator) certificate(r *http.Request) (*Identity, error) {
	var id *Identity
	var err error
	if c := connCacheFrom(r.Context()); c != nil {
		c.once.Do(func() { c.id, c.err = a.certs.Verify(r.TLS.PeerCertificates) })
		id, err = c.id, c.err
	} else {
		id, err = a.certs.Verify(r.TLS.PeerCertificates)
	}
	if err != nil {
		a.metrics.countAuth(Certificate, resultFailure)
		return nil, err
	}
	if a.revoc != nil {
		if err := a.revoc.check(r.Context(), id.Chain); err != nil {
			result := resultRevoked
			if errors.Is(err, errRevocationUnavailable) {
				result = resultUnavailable
			}
			a.metrics.countAuth(Certificate, result)
			return nil, err
		}
	}
	a.metrics.countAuth(Certificate, resultSuccess)
	return id, nil
}

// Refresh does every refresh that is due now: JWKS fetch or file reload, CRL
// fetches and file reloads. It returns what failed (the keys and CRLs held
// stay in use).
func (a *Authenticator) Refresh(ctx context.Context) error {
	var errs []error
	if a.oidc != nil {
		errs = append(errs, a.oidc.refresh(ctx))
	}
	if a.revoc != nil {
		errs = append(errs, a.revoc.refresh(ctx))
	}
	return errors.Join(errs...)
}

// Run keeps the JWKS and CRLs fresh until ctx is done, then returns nil.
// Failures are logged by the parts that failed; the held keys and CRLs stay in use.
func (a *Authenticator) Run(ctx context.Context) error {
	if a.oidc == nil && a.revoc == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(refreshTick)
	defer t.Stop()
	for {
		_ = a.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
