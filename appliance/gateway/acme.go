package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/configfile"
)

// The ACME challenge types the gateway can answer.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// ACMEConfig obtains and renews the server certificate from an ACME CA
// through certmagic (DESIGN section 6). It is on when Domains is not empty.
type ACMEConfig struct {
	// Domains are the names of the certificate (the service name first). Empty
	// turns ACME off.
	Domains []string `yaml:"domains,omitempty"`
	// CA is the ACME directory URL. Default Let's Encrypt's production one.
	CA string `yaml:"ca"`
	// CARoots are PEM files of the roots that the CA's own HTTPS certificate
	// chains to, when that is not a public CA (a private ACME server).
	CARoots []string `yaml:"ca_roots,omitempty"`
	// Email is the account contact address.
	Email string `yaml:"email,omitempty"`
	// AcceptTOS says the operator agrees to the CA's terms of service; the CA
	// refuses new accounts without it.
	AcceptTOS bool `yaml:"accept_tos"`
	// Storage is the directory of the account key, certificates and locks.
	// Instances that share it (a shared volume) share one certificate and solve
	// each other's HTTP-01 challenges.
	Storage string `yaml:"storage"`
	// Challenge is http-01 (default: the CA connects to HTTPListen, port 80) or
	// tls-alpn-01 (the CA connects to the client listener, port 443).
	Challenge string `yaml:"challenge"`
	// HTTPListen is the HTTP-01 listener: it answers challenges and redirects
	// everything else to https. Default ":80".
	HTTPListen string `yaml:"http_listen"`
}

// DefaultACMEConfig is the acme section's defaults (off).
func DefaultACMEConfig() ACMEConfig {
	return ACMEConfig{
		CA:         certmagic.LetsEncryptProductionCA,
		Storage:    "/var/lib/cmg/acme",
		Challenge:  ChallengeHTTP01,
		HTTPListen: ":80",
	}
}

// Enabled reports whether the certificate comes from ACME.
func (c ACMEConfig) Enabled() bool { return len(c.Domains) > 0 }

func (c *ClientConfig) validateCertSource(ps *configfile.Problems) {
	if c.CertCheckInterval < 100*time.Millisecond {
		ps.Addf("client.cert_check_interval", "must be at least 100ms, not %s", c.CertCheckInterval)
	}
	if !c.ACME.Enabled() {
		if c.CertFile == "" {
			ps.Addf("client.cert_file", "the server certificate file is required (or client.acme.domains)")
		}
		if c.KeyFile == "" {
			ps.Addf("client.key_file", "the server key file is required (or client.acme.domains)")
		}
		return
	}
	if c.CertFile != "" || c.KeyFile != "" {
		ps.Addf("client.cert_file", "give either cert_file and key_file or acme.domains, not both")
	}
	a := c.ACME
	for i, d := range a.Domains {
		if d == "" || strings.ContainsAny(d, " /:*") {
			ps.Addf(fmt.Sprintf("client.acme.domains[%d]", i), "%q is not a host name", d)
		}
	}
	if u, err := url.Parse(a.CA); err != nil || u.Scheme != "https" || u.Host == "" {
		ps.Addf("client.acme.ca", "must be an https directory URL, not %q", a.CA)
	}
	if !a.AcceptTOS {
		ps.Addf("client.acme.accept_tos", "must be true: the CA's terms of service must be accepted to get a certificate")
	}
	if a.Storage == "" {
		ps.Addf("client.acme.storage", "a directory is required")
	}
	switch a.Challenge {
	case ChallengeHTTP01:
		if _, _, err := net.SplitHostPort(a.HTTPListen); err != nil {
			ps.Addf("client.acme.http_listen", "%v", err)
		}
	case ChallengeTLSALPN01:
	default:
		ps.Addf("client.acme.challenge", "must be %s or %s, not %q", ChallengeHTTP01, ChallengeTLSALPN01, a.Challenge)
	}
}

// acmeCerts serves the certificate certmagic obtains and renews. New builds
// it without starting anything; start begins managing the domains.
type acmeCerts struct {
	cfg    ACMEConfig
	log    *slog.Logger
	roots  *x509.CertPool
	listen string // the client listener's address, for TLS-ALPN-01

	mu     sync.Mutex
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
}

func newACMECerts(cfg ACMEConfig, clientListen string, log *slog.Logger) (*acmeCerts, error) {
	a := &acmeCerts{cfg: cfg, log: log.With("acme", cfg.CA), listen: clientListen}
	if len(cfg.CARoots) > 0 {
		roots, err := auth.LoadPool(cfg.CARoots)
		if err != nil {
			return nil, fmt.Errorf("gateway: acme.ca_roots: %w", err)
		}
		a.roots = roots
	}
	return a, nil
}

// setup builds certmagic's cache, config and issuer. The cache starts its
// maintenance goroutine, so this runs from Run; stop ends it.
func (a *acmeCerts) setup(httpAddr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	zl := zap.New(&slogCore{log: a.log})
	var magic *certmagic.Config
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zl,
	})
	magic = certmagic.New(a.cache, certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: a.cfg.Storage},
		DefaultServerName: a.cfg.Domains[0],
		Logger:            zl,
	})
	tmpl := certmagic.ACMEIssuer{
		CA:           a.cfg.CA,
		Email:        a.cfg.Email,
		Agreed:       a.cfg.AcceptTOS,
		TrustedRoots: a.roots,
		Logger:       zl,
	}
	// The gateway's own listeners answer the challenge: certmagic finds the
	// address in use and leaves it to them.
	switch a.cfg.Challenge {
	case ChallengeTLSALPN01:
		tmpl.DisableHTTPChallenge = true
		tmpl.ListenHost, tmpl.AltTLSALPNPort = splitListen(a.listen)
	default:
		tmpl.DisableTLSALPNChallenge = true
		tmpl.ListenHost, tmpl.AltHTTPPort = splitListen(httpAddr)
	}
	a.issuer = certmagic.NewACMEIssuer(magic, tmpl)
	magic.Issuers = []certmagic.Issuer{a.issuer}
	a.magic = magic
}

// splitListen returns the host and port of a listen address.
func splitListen(addr string) (string, int) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return host, p
}

// manage obtains (or loads from storage) the certificate and keeps it
// renewed in the background until ctx is done; failures are logged and
// retried with backoff by certmagic.
func (a *acmeCerts) manage(ctx context.Context) error {
	a.mu.Lock()
	magic := a.magic
	a.mu.Unlock()
	return magic.ManageAsync(ctx, a.cfg.Domains)
}

func (a *acmeCerts) stop() {
	a.mu.Lock()
	c := a.cache
	a.cache = nil
	a.mu.Unlock()
	if c != nil {
		c.Stop()
	}
}

func (a *acmeCerts) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	a.mu.Lock()
	magic := a.magic
	a.mu.Unlock()
	if magic == nil {
		return nil, errors.New("gateway: no certificate yet")
	}
	return magic.GetCertificate(hello)
}

func (a *acmeCerts) notAfter() time.Time {
	a.mu.Lock()
	c := a.cache
	a.mu.Unlock()
	if c == nil {
		return time.Time{}
	}
	var t time.Time
	for _, cert := range c.AllMatchingCertificates(a.cfg.Domains[0]) {
		if cert.Leaf != nil && cert.Leaf.NotAfter.After(t) {
			t = cert.Leaf.NotAfter
		}
	}
	return t
}

// alpnProtocol is the ALPN protocol of TLS-ALPN-01 challenges, offered on the
// client listener when that challenge is in use.
const alpnProtocol = acmez.ACMETLS1Protocol

// httpHandler is the HTTP-01 listener's handler: ACME challenges, and a
// permanent redirect to https for everything else.
func (a *acmeCerts) httpHandler(clientListen string) http.Handler {
	_, port, _ := net.SplitHostPort(clientListen)
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			host = a.cfg.Domains[0]
		}
		if port != "" && port != "443" {
			host = net.JoinHostPort(host, port)
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
	a.mu.Lock()
	iss := a.issuer
	a.mu.Unlock()
	return iss.HTTPChallengeHandler(redirect)
}

// slogCore is a zap core writing to the gateway's slog logger, so certmagic's
// logs land in the gateway's JSON log.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), zapToSlog(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	c.log.LogAttrs(context.Background(), zapToSlog(e.Level), "certmagic: "+e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	case l >= zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// startACME starts certmagic and, for HTTP-01, the challenge listener; it
// returns what stops them.
func (g *Gateway) startACME(ctx context.Context, errc chan<- error) (stop func()) {
	httpAddr := g.cfg.Client.ACME.HTTPListen
	if g.acmeLn != nil {
		httpAddr = g.acmeLn.Addr().String()
	}
	g.acme.setup(httpAddr)
	var srv *http.Server
	if g.acmeLn != nil {
		srv = &http.Server{
			Handler:           g.acme.httpHandler(g.clientLn.Addr().String()),
			ReadHeaderTimeout: g.cfg.Client.ReadHeaderTimeout,
			IdleTimeout:       g.cfg.Client.IdleTimeout,
			MaxHeaderBytes:    int(g.cfg.Client.MaxHeaderBytes),
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		ln := g.acmeLn
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("gateway: ACME HTTP-01 listener: %w", err)
			}
		}()
	}
	mctx, cancel := context.WithCancel(ctx)
	if err := g.acme.manage(mctx); err != nil {
		g.log.Error("gateway: ACME certificate management did not start", "err", err)
	}
	return func() {
		cancel()
		if srv != nil {
			srv.Close()
		}
		g.acme.stop()
	}
}
