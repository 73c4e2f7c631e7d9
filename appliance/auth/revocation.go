package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// errRevocationUnavailable marks a certificate whose revocation status could
// not be established (no current, correctly signed CRL).
var errRevocationUnavailable = errors.New("revocation status unavailable")

// maxDistributionPoints bounds the CRL distribution points the gateway keeps.
// They come from CA-signed certificates, so this only guards against a CA
// that puts a fresh URL in every certificate.
const maxDistributionPoints = 256

// revocation checks verified chains against CRLs. The per-request check is map
// lookups on CRLs already held; a CRL is only fetched on the request path the
// first time its distribution point is seen, or when it went stale and the
// background refresh did not replace it (at most once per RetryInterval).
type revocation struct {
	cfg     RevocationConfig
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger
	metrics *Metrics

	files []*crlSource

	mu  sync.RWMutex
	dps map[string]*crlSource
}

// crlSource is one CRL file or distribution point.
type crlSource struct {
	name   string
	isFile bool
	// cur is the CRL held, read without locks by the per-request check.
	cur atomic.Pointer[crlSet]
	// lastSuccess is the Unix nanoseconds of the last successful load, for the metric.
	lastSuccess atomic.Int64

	// mu serializes loads and guards the fields below.
	mu          sync.Mutex
	lastAttempt time.Time
	lastErr     error
	nextRefresh time.Time
	stamp       fileStamp
	valid       validators
}

func newRevocation(cfg RevocationConfig, o *Options) (*revocation, error) {
	r := &revocation{cfg: cfg, client: o.HTTPClient, now: o.Now, log: o.Logger, metrics: o.Metrics, dps: map[string]*crlSource{}}
	var errs []error
	for _, f := range cfg.Files {
		// An unreadable file stops the start; a stale one does not (it is
		// reported, and the check follows on_unavailable until it is replaced).
		s := &crlSource{name: f, isFile: true}
		s.mu.Lock()
		s.lastAttempt = r.now()
		if err := r.loadFile(s); err != nil {
			errs = append(errs, fmt.Errorf("CRL %s: %w", f, err))
		} else {
			_ = r.settle(s, s.lastAttempt, nil)
		}
		s.mu.Unlock()
		r.files = append(r.files, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	r.updateMetrics()
	return r, nil
}

// check returns nil when no certificate of chain (leaf first, root last) is
// revoked; a ClientCertificateRevoked error when one is; and, when the status
// of one cannot be established and the rule is fail_closed, a
// ClientCertificateRequired error: the original product refuses such a device
// with "client certificate required" too, and "revoked" would send operators
// looking for a revocation that does not exist.
func (r *revocation) check(ctx context.Context, chain []*x509.Certificate) error {
	var unknown error
	for i := 0; i+1 < len(chain); i++ {
		revoked, err := r.status(ctx, chain[i], chain[i+1])
		if revoked {
			if i == 0 {
				return httperror.New(httperror.ClientCertificateRevoked, "the client certificate is revoked")
			}
			return httperror.New(httperror.ClientCertificateRevoked, "a CA certificate in the client certificate's chain is revoked")
		}
		if err != nil && unknown == nil {
			unknown = err
		}
	}
	if unknown == nil || r.cfg.OnUnavailable == FailOpen {
		return nil
	}
	return httperror.Wrap(httperror.ClientCertificateRequired,
		"the revocation status of the client certificate cannot be checked: no current CRL",
		fmt.Errorf("%w: %w", errRevocationUnavailable, unknown))
}

// status checks cert, issued by issuer: revoked, or an error saying why its
// status is unknown. File CRLs of the issuer take precedence over the
// certificate's distribution points.
func (r *revocation) status(ctx context.Context, cert, issuer *x509.Certificate) (bool, error) {
	sources := r.filesFor(issuer)
	if len(sources) == 0 && r.cfg.FetchDistributionPoints {
		var err error
		if sources, err = r.distributionPoints(cert); err != nil {
			return false, err
		}
	}
	if len(sources) == 0 {
		return false, fmt.Errorf("no CRL for issuer %q: no CRL file covers it and the certificate names no http distribution point", issuer.Subject)
	}
	var lastErr error
	good := false
	for _, s := range sources {
		set, err := r.ensure(ctx, s)
		if err == nil {
			err = set.checkIssuer(issuer)
		}
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", s.name, err)
			continue
		}
		if set.isRevoked(cert.SerialNumber) {
			return true, nil
		}
		good = true
	}
	if good {
		return false, nil
	}
	return false, lastErr
}

func (r *revocation) filesFor(issuer *x509.Certificate) []*crlSource {
	var out []*crlSource
	for _, s := range r.files {
		if set := s.cur.Load(); set != nil && set.coversIssuer(issuer) {
			out = append(out, s)
		}
	}
	return out
}

// distributionPoints returns the sources of cert's http and https CRL
// distribution points (others, such as ldap, are skipped), creating them.
func (r *revocation) distributionPoints(cert *x509.Certificate) ([]*crlSource, error) {
	var out []*crlSource
	for _, dp := range cert.CRLDistributionPoints {
		u, err := url.Parse(dp)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		s, err := r.dpSource(u.String())
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (r *revocation) dpSource(u string) (*crlSource, error) {
	r.mu.RLock()
	s, ok := r.dps[u]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.dps[u]; ok {
		return s, nil
	}
	if len(r.dps) >= maxDistributionPoints {
		return nil, fmt.Errorf("more than %d CRL distribution points seen", maxDistributionPoints)
	}
	s = &crlSource{name: u}
	r.dps[u] = s
	return s, nil
}

// ensure returns the source's CRL when it is current, loading it first when it
// is missing or stale and the last attempt is at least RetryInterval old.
func (r *revocation) ensure(ctx context.Context, s *crlSource) (*crlSet, error) {
	if set := s.cur.Load(); set != nil && set.fresh(r.now()) {
		return set, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := r.now()
	if set := s.cur.Load(); set != nil && set.fresh(now) {
		return set, nil // another request loaded it meanwhile
	}
	if s.lastAttempt.IsZero() || now.Sub(s.lastAttempt) >= r.cfg.RetryInterval {
		// The device may go away; the load serves every waiter, so it does not.
		_ = r.loadLocked(context.WithoutCancel(ctx), s)
		r.updateMetrics()
	}
	set := s.cur.Load()
	switch {
	case set != nil && set.fresh(r.now()):
		return set, nil
	case s.lastErr != nil:
		return nil, s.lastErr
	case set != nil:
		return nil, fmt.Errorf("the CRL is past its nextUpdate (%s)", set.list.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil, errors.New("the CRL has not been loaded yet")
}

// due reports whether the background refresh should load s now: a file when
// it changed; a distribution point when its refresh time came; either after
// RetryInterval following a failure, and after RefreshInterval anyway (which
// for an unchanged file just confirms that its CRL is still current).
func (r *revocation) due(s *crlSource, now time.Time) bool {
	if s.isFile {
		if st, err := stampOf(s.name); err == nil && st != s.stamp {
			return true
		}
	}
	if s.lastErr != nil || s.cur.Load() == nil {
		return now.Sub(s.lastAttempt) >= r.cfg.RetryInterval
	}
	if s.isFile {
		return now.Sub(s.lastAttempt) >= r.cfg.RefreshInterval
	}
	return !now.Before(s.nextRefresh)
}

// refresh loads every source that is due.
func (r *revocation) refresh(ctx context.Context) error {
	r.mu.RLock()
	sources := append([]*crlSource(nil), r.files...)
	for _, s := range r.dps {
		sources = append(sources, s)
	}
	r.mu.RUnlock()
	var errs []error
	for _, s := range sources {
		s.mu.Lock()
		if r.due(s, r.now()) {
			if err := r.loadLocked(ctx, s); err != nil {
				errs = append(errs, err)
			}
		}
		s.mu.Unlock()
	}
	r.updateMetrics()
	return errors.Join(errs...)
}

// loadLocked (re)loads s: a file when it changed, a distribution point always
// (conditionally, so an unchanged CRL costs a 304). It succeeds when s then
// holds a current CRL. A failure keeps the CRL held.
func (r *revocation) loadLocked(ctx context.Context, s *crlSource) error {
	now := r.now()
	s.lastAttempt = now
	var err error
	if s.isFile {
		err = r.loadFile(s)
	} else {
		err = r.fetchDP(ctx, s)
	}
	return r.settle(s, now, err)
}

// settle records the outcome of a load at now: success when s holds a current CRL.
func (r *revocation) settle(s *crlSource, now time.Time, err error) error {
	if set := s.cur.Load(); err == nil && !set.fresh(now) {
		err = fmt.Errorf("the CRL is past its nextUpdate (%s) and no newer one is published", set.list.NextUpdate.UTC().Format(time.RFC3339))
	}
	if err != nil {
		s.lastErr = fmt.Errorf("CRL %s: %w", s.name, err)
		r.metrics.crlFailed()
		r.log.Warn("CRL load failed; keeping the CRL held", "crl", s.name, "err", err)
		return s.lastErr
	}
	s.lastErr = nil
	s.lastSuccess.Store(now.UnixNano())
	s.nextRefresh = r.nextRefresh(s.cur.Load(), now)
	return nil
}

func (r *revocation) loadFile(s *crlSource) error {
	st, err := stampOf(s.name)
	if err != nil {
		return err
	}
	if st == s.stamp && s.cur.Load() != nil {
		return nil
	}
	data, err := readBounded(s.name, r.cfg.MaxSizeBytes)
	if err != nil {
		return err
	}
	set, err := parseCRL(data)
	if err != nil {
		return err
	}
	s.stamp = st
	s.cur.Store(set)
	return nil
}

func (r *revocation) fetchDP(ctx context.Context, s *crlSource) error {
	data, v, err := fetch(ctx, r.client, s.name, r.cfg.FetchTimeout, r.cfg.MaxSizeBytes, s.valid)
	if errors.Is(err, errNotModified) && s.cur.Load() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	set, err := parseCRL(data)
	if err != nil {
		return err
	}
	s.valid = v
	s.cur.Store(set)
	return nil
}

// nextRefresh is when a distribution point's CRL is fetched again: after
// RefreshInterval, or earlier, a tenth of its validity before its nextUpdate,
// so a new CRL is in hand before the old one goes stale.
func (r *revocation) nextRefresh(set *crlSet, now time.Time) time.Time {
	next := now.Add(r.cfg.RefreshInterval)
	if set == nil || set.list.NextUpdate.IsZero() {
		return next
	}
	nu, tu := set.list.NextUpdate, set.list.ThisUpdate
	before := nu.Add(-nu.Sub(tu) / 10)
	if !before.After(now) {
		// Already close to or past nextUpdate: the issuer has not published a
		// newer CRL yet; ask again soon, not at once.
		before = now.Add(r.cfg.RetryInterval)
	}
	if before.Before(next) {
		return before
	}
	return next
}

// updateMetrics sets the CRL gauge to the oldest last success among the sources.
func (r *revocation) updateMetrics() {
	if r.metrics == nil {
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var oldest int64 = -1
	visit := func(s *crlSource) {
		if t := s.lastSuccess.Load(); oldest < 0 || t < oldest {
			oldest = t
		}
	}
	for _, s := range r.files {
		visit(s)
	}
	for _, s := range r.dps {
		visit(s)
	}
	switch {
	case oldest < 0:
		return // no CRL in use yet
	case oldest == 0:
		r.metrics.crlOldestSuccess(time.Time{})
	default:
		r.metrics.crlOldestSuccess(time.Unix(0, oldest))
	}
}
