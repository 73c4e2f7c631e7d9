// Package identity gives each simulated device of the load tester its own
// identity, from a pluggable Source: client certificates issued on the fly by
// a device CA (the demo PKI's, or any given CA), certificates from files, or
// site tokens signed with a site key. It also writes the original product's
// server chain (RSA-2048 with an intermediate) for runs that reproduce the
// original's connection habits.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// Identity is one device's credentials: a client certificate, a bearer token
// the gateway verifies, or both.
type Identity struct {
	// Name is the device's identity as the gateway sees it (the certificate's
	// CN or the token's subject).
	Name        string
	Certificate *tls.Certificate
	Token       string
}

// Source makes the identity of device i (numbered across shards, so two
// shards never share a device).
type Source interface {
	Identity(i int) (Identity, error)
	// Describe says what the source is, for reports.
	Describe() string
}

// DeviceName is the name of device i under prefix.
func DeviceName(prefix string, i int) string { return fmt.Sprintf("%s-%06d", prefix, i) }

// KeyType is the key of issued device certificates.
type KeyType string

// Key types. ECDSA P-256 takes microseconds to make, so tens of thousands of
// devices start in seconds; RSA-2048 (what Windows clients usually hold) takes
// tens of milliseconds a key, so an RSA issuer draws from a small pool of keys.
const (
	ECDSA   KeyType = "ecdsa"
	RSA2048 KeyType = "rsa2048"
)

// rsaPool is how many RSA keys an RSA issuer makes and shares among devices.
const rsaPool = 8

// Issuer issues device certificates signed by a CA, in memory.
type Issuer struct {
	ca      *x509.Certificate
	caKey   crypto.Signer
	prefix  string
	keyType KeyType
	now     time.Time

	once    sync.Once
	rsaKeys []*rsa.PrivateKey
	rsaErr  error
}

// NewIssuer loads the CA (PEM certificate, PKCS#8 or EC/PKCS#1 key) that signs
// device certificates; the demo PKI's is pki/device-ca.pem and device-ca-key.pem.
func NewIssuer(caCertFile, caKeyFile, prefix string, keyType KeyType) (*Issuer, error) {
	certs, err := pki.ReadCertificates(caCertFile)
	if err != nil {
		return nil, err
	}
	key, err := readKey(caKeyFile)
	if err != nil {
		return nil, err
	}
	if keyType != ECDSA && keyType != RSA2048 {
		return nil, fmt.Errorf("identity: key type must be %s or %s, not %q", ECDSA, RSA2048, keyType)
	}
	if prefix == "" {
		prefix = "loadtest-device"
	}
	return &Issuer{ca: certs[0], caKey: key, prefix: prefix, keyType: keyType, now: time.Now()}, nil
}

// Describe implements Source.
func (s *Issuer) Describe() string {
	return fmt.Sprintf("client certificates (%s) issued by %q", s.keyType, s.ca.Subject.CommonName)
}

// Identity implements Source: a certificate with CN DeviceName(prefix, i),
// chained with the issuing CA.
func (s *Issuer) Identity(i int) (Identity, error) {
	name := DeviceName(s.prefix, i)
	var key crypto.Signer
	switch s.keyType {
	case RSA2048:
		s.once.Do(func() {
			for range rsaPool {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					s.rsaErr = err
					return
				}
				s.rsaKeys = append(s.rsaKeys, k)
			}
		})
		if s.rsaErr != nil {
			return Identity{}, s.rsaErr
		}
		key = s.rsaKeys[i%len(s.rsaKeys)]
	default:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Identity{}, err
		}
		key = k
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"cmg load test devices"}},
		NotBefore:    s.now.Add(-time.Hour),
		NotAfter:     s.now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, key.Public(), s.caKey)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: issue %s: %w", name, err)
	}
	chain := [][]byte{der}
	if s.ca.Subject.String() != s.ca.Issuer.String() {
		chain = append(chain, s.ca.Raw)
	}
	return Identity{Name: name, Certificate: &tls.Certificate{Certificate: chain, PrivateKey: key}}, nil
}

// Files are certificate and key files given by the operator; device i uses
// pair i modulo their number (fewer pairs than devices means shared identities).
type Files struct {
	pairs []tls.Certificate
	names []string
}

// NewFiles loads the pairs; certFiles[i] goes with keyFiles[i].
func NewFiles(certFiles, keyFiles []string) (*Files, error) {
	if len(certFiles) == 0 || len(certFiles) != len(keyFiles) {
		return nil, errors.New("identity: give as many key files as certificate files, at least one")
	}
	f := &Files{}
	for i := range certFiles {
		c, err := tls.LoadX509KeyPair(certFiles[i], keyFiles[i])
		if err != nil {
			return nil, fmt.Errorf("identity: %s: %w", certFiles[i], err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("identity: %s: %w", certFiles[i], err)
		}
		f.pairs = append(f.pairs, c)
		f.names = append(f.names, leaf.Subject.CommonName)
	}
	return f, nil
}

// Describe implements Source.
func (f *Files) Describe() string { return fmt.Sprintf("%d client certificate file(s)", len(f.pairs)) }

// Identity implements Source.
func (f *Files) Identity(i int) (Identity, error) {
	j := i % len(f.pairs)
	return Identity{Name: f.names[j], Certificate: &f.pairs[j]}, nil
}

// Distinct is how many distinct identities the files hold.
func (f *Files) Distinct() int { return len(f.pairs) }

// SiteTokens issues site device tokens (DESIGN section 6) signed with a site key.
type SiteTokens struct {
	iss    *sitetoken.Issuer
	prefix string
	aud    []string
}

// NewSiteTokens loads the site signing key (`cmg token keygen`) for site; kid
// empty means the key's thumbprint, as the gateway expects by default.
func NewSiteTokens(keyFile, site, kid, prefix string, audience []string) (*SiteTokens, error) {
	key, err := sitetoken.LoadKey(keyFile)
	if err != nil {
		return nil, err
	}
	iss, err := sitetoken.NewIssuer(key, kid, site)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "loadtest-device"
	}
	return &SiteTokens{iss: iss, prefix: prefix, aud: audience}, nil
}

// Describe implements Source.
func (s *SiteTokens) Describe() string {
	return fmt.Sprintf("site device tokens for site %q", s.iss.Site())
}

// Identity implements Source.
func (s *SiteTokens) Identity(i int) (Identity, error) {
	name := DeviceName(s.prefix, i)
	tok, err := s.iss.Issue(sitetoken.Device, name, sitetoken.Options{Audience: s.aud})
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: name, Token: tok}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func readKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("identity: %s: no PEM key", file)
	}
	var k any
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", file, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("identity: %s: not a signing key", file)
	}
	return s, nil
}
