package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/pki"
)

// CertConfig says which client certificates identify devices.
type CertConfig struct {
	// Roots are PEM files of the trusted root CAs. Empty disables client
	// certificate authentication.
	Roots []string `yaml:"roots"`
	// Intermediates are PEM files of intermediate CAs the gateway may use to build
	// a chain when a device sends only its leaf (the original product uploads them).
	Intermediates []string `yaml:"intermediates,omitempty"`
	// IdentitySAN takes the device identity from a subject alternative name instead
	// of the subject CN: "dns", "uri" or "email" (the first of that kind). Empty
	// means the CN, lower-cased.
	IdentitySAN string `yaml:"identity_san,omitempty"`
}

// Validate reports every problem of the section.
func (c CertConfig) Validate() error {
	var ps configfile.Problems
	for i, f := range c.Roots {
		if f == "" {
			ps.Addf(fmt.Sprintf("roots[%d]", i), "empty file name")
		}
	}
	switch c.IdentitySAN {
	case "", "dns", "uri", "email":
	default:
		ps.Addf("identity_san", "must be dns, uri or email (or empty for the subject CN), not %q", c.IdentitySAN)
	}
	return ps.Err()
}

// CertVerifier verifies device certificate chains.
type CertVerifier struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
	san           string
	now           func() time.Time
	cache         *chainCache // nil: verify every chain
}

// NewCertVerifier loads the configured roots and intermediates. It returns nil and
// no error when no roots are configured (certificates are then not accepted).
func NewCertVerifier(cfg CertConfig, now func() time.Time) (*CertVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Roots) == 0 {
		return nil, nil
	}
	roots, err := LoadPool(cfg.Roots)
	if err != nil {
		return nil, fmt.Errorf("client certificate roots: %w", err)
	}
	inter, err := LoadPool(cfg.Intermediates)
	if err != nil {
		return nil, fmt.Errorf("client certificate intermediates: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &CertVerifier{roots: roots, intermediates: inter, san: cfg.IdentitySAN, now: now,
		cache: newChainCache(DefaultChainCacheSize)}, nil
}

// Roots is the pool of trusted roots (for the TLS config's hints to clients).
func (v *CertVerifier) Roots() *x509.CertPool { return v.roots }

// Verify checks a presented chain (leaf first) and returns the device identity.
// Any failure is ClientCertificateRequired: the device must present a valid one.
func (v *CertVerifier) Verify(presented []*x509.Certificate) (*Identity, error) {
	if len(presented) == 0 {
		return nil, httperror.New(httperror.ClientCertificateRequired, "a client certificate is required")
	}
	leaf := presented[0]
	now := v.now()
	key := chainKey(presented)
	chain, cached := v.cache.get(key, leaf, now)
	if !cached {
		var err error
		if chain, err = v.verifyChain(presented, now); err != nil {
			return nil, err
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, httperror.New(httperror.ClientCertificateRequired, "the client certificate's key usage does not allow digital signatures")
	}
	device, err := v.deviceOf(leaf)
	if err != nil {
		return nil, err
	}
	if !cached {
		v.cache.add(key, chain)
	}
	return &Identity{
		Method:  Certificate,
		Device:  device,
		Subject: leaf.Subject.String(),
		Issuer:  leaf.Issuer.String(),
		Chain:   chain,
		Expires: leaf.NotAfter,
	}, nil
}

// verifyChain builds and verifies a chain from the leaf to a root.
func (v *CertVerifier) verifyChain(presented []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	inter := v.intermediates.Clone()
	for _, c := range presented[1:] {
		inter.AddCert(c)
	}
	chains, err := presented[0].Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, httperror.Wrap(httperror.ClientCertificateRequired, "the client certificate is not valid: "+describeVerifyError(err), err)
	}
	return chains[0], nil
}

func (v *CertVerifier) deviceOf(leaf *x509.Certificate) (string, error) {
	var id string
	switch v.san {
	case "":
		id = deviceFromCN(leaf.Subject.CommonName)
	case "dns":
		if len(leaf.DNSNames) > 0 {
			id = strings.ToLower(leaf.DNSNames[0])
		}
	case "email":
		if len(leaf.EmailAddresses) > 0 {
			id = strings.ToLower(leaf.EmailAddresses[0])
		}
	case "uri":
		if len(leaf.URIs) > 0 {
			id = leaf.URIs[0].String()
		}
	}
	if id == "" {
		return "", httperror.New(httperror.ClientCertificateRequired, "the client certificate names no device identity")
	}
	return id, nil
}

func describeVerifyError(err error) string {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv):
		switch inv.Reason {
		case x509.Expired:
			return "expired or not yet valid"
		case x509.IncompatibleUsage:
			return "not valid for client authentication"
		}
		return inv.Error()
	case errors.As(err, &ua):
		return "issued by an untrusted authority"
	}
	return err.Error()
}

// LoadPool reads PEM certificate files into a pool.
func LoadPool(files []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		certs, err := pki.ReadCertificates(f)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}
