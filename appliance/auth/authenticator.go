package auth

import (
	"net/http"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
)

// Config is the device authentication section of the gateway configuration.
type Config struct {
	Certificates CertConfig `yaml:"certificates"`
}

// Validate reports every problem of the section.
func (c Config) Validate() error {
	var ps configfile.Problems
	ps.Merge("certificates", c.Certificates.Validate())
	return ps.Err()
}

// Authenticator decides who a device is.
type Authenticator struct {
	certs *CertVerifier
}

// New builds an Authenticator from its configuration. now may be nil.
func New(cfg Config, now func() time.Time) (*Authenticator, error) {
	certs, err := NewCertVerifier(cfg.Certificates, now)
	if err != nil {
		return nil, err
	}
	return &Authenticator{certs: certs}, nil
}

// Certificates returns the certificate verifier, or nil when client certificates
// are not configured.
func (a *Authenticator) Certificates() *CertVerifier { return a.certs }

// Authenticate returns the identity of the device that sent r for a route of the
// given mode, or an *httperror.Error saying why not.
func (a *Authenticator) Authenticate(r *http.Request, mode Mode) (*Identity, error) {
	if mode == Server {
		return nil, httperror.New(httperror.InvalidToken, "this route requires a bearer token")
	}
	if a.certs == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, httperror.New(httperror.ClientCertificateRequired, "a client certificate is required")
	}
	if c := connCacheFrom(r.Context()); c != nil {
		c.once.Do(func() { c.id, c.err = a.certs.Verify(r.TLS.PeerCertificates) })
		return c.id, c.err
	}
	return a.certs.Verify(r.TLS.PeerCertificates)
}
