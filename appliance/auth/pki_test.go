package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the tests' "now"; certificates are valid around it.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock the tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testCA is a CA made in test code.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serials atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serials.Add(1)) }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(name string, crlDPs ...string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             t0.Add(-24 * time.Hour),
		NotAfter:              t0.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		CRLDistributionPoints: crlDPs,
	}
}

func newRootCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(name)
	return &testCA{cert: sign(t, tmpl, tmpl, &key.PublicKey, key), key: key}
}

// intermediate issues a sub-CA whose own certificate names crlDPs.
func (ca *testCA) intermediate(t testing.TB, name string, crlDPs ...string) *testCA {
	t.Helper()
	key := newKey(t)
	return &testCA{cert: sign(t, caTemplate(name, crlDPs...), ca.cert, &key.PublicKey, ca.key), key: key}
}

// leaf issues a client certificate for device cn naming crlDPs.
func (ca *testCA) leaf(t testing.TB, cn string, crlDPs ...string) *x509.Certificate {
	t.Helper()
	c, _ := ca.leafWithKey(t, cn, crlDPs...)
	return c
}

func (ca *testCA) leafWithKey(t testing.TB, cn string, crlDPs ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CRLDistributionPoints: crlDPs,
	}
	return sign(t, tmpl, ca.cert, &key.PublicKey, ca.key), key
}

// crl makes a DER CRL of ca revoking serials, valid from thisUpdate for validity.
func (ca *testCA) crl(t testing.TB, number int64, thisUpdate time.Time, validity time.Duration, revoked ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: thisUpdate,
		NextUpdate: thisUpdate.Add(validity),
	}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// writePEM writes certificates as a PEM file in dir and returns its path.
func writeCerts(t testing.TB, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return writeFile(t, dir, name, b)
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}
