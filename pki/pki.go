// Package pki is the small development PKI behind `cmg pki` and `cmg demo`: a root
// CA that signs the gateway's server certificate and a device issuing CA, the device
// issuing CA that signs client certificates and publishes a CRL, and a separate
// connector CA whose certificates carry the connector identity cmg://<site>/<name>.
// It is for demos and tests, not for production: keys are written unencrypted.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a PKI directory.
const (
	RootCert           = "ca.pem"
	RootKey            = "ca-key.pem"
	DeviceCACert       = "device-ca.pem"
	DeviceCAKey        = "device-ca-key.pem"
	DeviceCRL          = "device-ca.crl"
	ConnectorCACert    = "connector-ca.pem"
	ConnectorCAKey     = "connector-ca-key.pem"
	GatewayCert        = "gateway.pem"
	GatewayKey         = "gateway-key.pem"
	caValidity         = 10 * 365 * 24 * time.Hour
	leafValidity       = 365 * 24 * time.Hour
	backdate           = time.Hour
	crlValidity        = 7 * 24 * time.Hour
	connectorURIScheme = "cmg"
)

// Dir is a PKI directory.
type Dir string

// Path returns the path of a file in the directory.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// ClientCert and ClientKey name a device's certificate files.
func ClientCert(name string) string { return "client-" + name + ".pem" }

// ClientKey names a device's key file.
func ClientKey(name string) string { return "client-" + name + "-key.pem" }

// ConnectorCert names a connector's certificate file.
func ConnectorCert(name string) string { return "connector-" + name + ".pem" }

// ConnectorKey names a connector's key file.
func ConnectorKey(name string) string { return "connector-" + name + "-key.pem" }

// ConnectorURI is the identity a connector certificate carries.
func ConnectorURI(site, name string) *url.URL {
	return &url.URL{Scheme: connectorURIScheme, Host: site, Path: "/" + name}
}

// ParseConnectorURI returns the site and name of a connector identity URI, or
// false when the URI is not one.
func ParseConnectorURI(u *url.URL) (site, name string, ok bool) {
	if u == nil || u.Scheme != connectorURIScheme || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", false
	}
	name = strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return u.Host, name, true
}

// InitOptions shapes a new PKI.
type InitOptions struct {
	// Hosts are the DNS names and IP addresses of the gateway server certificate.
	Hosts []string
	// CRLURL, when set, is written as the CRL distribution point of client
	// certificates issued later.
	CRLURL string
	// Now is the issuing time (time.Now when zero).
	Now time.Time
}

// Init creates the CAs, the gateway server certificate, an empty device CRL and
// an empty root CRL in dir. It refuses to overwrite an existing PKI.
func Init(dir Dir, opts InitOptions) error {
	if _, err := os.Stat(dir.Path(RootCert)); err == nil {
		return fmt.Errorf("pki: %s already holds a PKI", dir)
	}
	if err := os.MkdirAll(string(dir), 0o755); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	root, rootKey, err := newCA("cmg dev root CA", nil, nil, now)
	if err != nil {
		return err
	}
	if err := writePair(dir, RootCert, RootKey, root, rootKey); err != nil {
		return err
	}
	dev, devKey, err := newCA("cmg dev device issuing CA", root, rootKey, now)
	if err != nil {
		return err
	}
	if err := writePair(dir, DeviceCACert, DeviceCAKey, dev, devKey); err != nil {
		return err
	}
	conn, connKey, err := newCA("cmg dev connector CA", nil, nil, now)
	if err != nil {
		return err
	}
	if err := writePair(dir, ConnectorCACert, ConnectorCAKey, conn, connKey); err != nil {
		return err
	}
	if opts.CRLURL != "" {
		if err := os.WriteFile(dir.Path("crl-url"), []byte(opts.CRLURL+"\n"), 0o644); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	if err := IssueServer(dir, opts.Hosts, now); err != nil {
		return err
	}
	if err := WriteRootCRL(dir, now); err != nil {
		return err
	}
	return writeCRL(dir, nil, big.NewInt(1), now)
}

// IssueServer issues the gateway server certificate for hosts (localhost, 127.0.0.1
// and ::1 are always included), signed by the root CA.
func IssueServer(dir Dir, hosts []string, now time.Time) error {
	root, rootKey, err := loadPair(dir, RootCert, RootKey)
	if err != nil {
		return err
	}
	tmpl := leafTemplate(now)
	tmpl.Subject = pkix.Name{CommonName: firstOr(hosts, "localhost"), Organization: []string{"cmg dev"}}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			if !containsIP(tmpl.IPAddresses, ip) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && !contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(dir, GatewayCert, GatewayKey, tmpl, root, rootKey)
}

// IssueConnector issues a connector certificate with the identity cmg://site/name.
func IssueConnector(dir Dir, site, name string, now time.Time) error {
	if !validName(site) || !validName(name) {
		return fmt.Errorf("pki: connector site and name must be letters, digits, '-' and '.' (got %q, %q)", site, name)
	}
	ca, caKey, err := loadPair(dir, ConnectorCACert, ConnectorCAKey)
	if err != nil {
		return err
	}
	tmpl := leafTemplate(now)
	tmpl.Subject = pkix.Name{CommonName: name, OrganizationalUnit: []string{site}, Organization: []string{"cmg dev connectors"}}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.URIs = []*url.URL{ConnectorURI(site, name)}
	return issue(dir, ConnectorCert(name), ConnectorKey(name), tmpl, ca, caKey)
}

// IssueClient issues a device certificate with subject CN name, signed by the
// device issuing CA. The certificate file holds the leaf and the issuing CA.
func IssueClient(dir Dir, name string, now time.Time) error {
	if !validName(name) {
		return fmt.Errorf("pki: client name must be letters, digits, '-' and '.' (got %q)", name)
	}
	ca, caKey, err := loadPair(dir, DeviceCACert, DeviceCAKey)
	if err != nil {
		return err
	}
	tmpl := leafTemplate(now)
	tmpl.Subject = pkix.Name{CommonName: name, Organization: []string{"cmg dev devices"}}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if u, err := os.ReadFile(dir.Path("crl-url")); err == nil {
		tmpl.CRLDistributionPoints = []string{strings.TrimSpace(string(u))}
	}
	return issue(dir, ClientCert(name), ClientKey(name), tmpl, ca, caKey)
}

// Revoke adds the serial of the certificate in certFile to the device CRL and
// re-signs it with the next CRL number.
func Revoke(dir Dir, certFile string, now time.Time) error {
	certs, err := ReadCertificates(certFile)
	if err != nil {
		return err
	}
	ca, _, err := loadPair(dir, DeviceCACert, DeviceCAKey)
	if err != nil {
		return err
	}
	leaf := certs[0]
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("pki: %s was not issued by the device CA: %w", certFile, err)
	}
	crl, err := ReadCRL(dir)
	if err != nil {
		return err
	}
	entries := crl.RevokedCertificateEntries
	for _, e := range entries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return nil
		}
	}
	entries = append(entries, x509.RevocationListEntry{SerialNumber: leaf.SerialNumber, RevocationTime: now})
	next := new(big.Int).Add(crl.Number, big.NewInt(1))
	return writeCRL(dir, entries, next, now)
}

// ReadCRL reads the device CRL.
func ReadCRL(dir Dir) (*x509.RevocationList, error) {
	data, err := os.ReadFile(dir.Path(DeviceCRL))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir.Path(DeviceCRL), err)
	}
	return crl, nil
}

func writeCRL(dir Dir, entries []x509.RevocationListEntry, number *big.Int, now time.Time) error {
	ca, caKey, err := loadPair(dir, DeviceCACert, DeviceCAKey)
	if err != nil {
		return err
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(crlValidity),
	}, ca, caKey)
	if err != nil {
		return fmt.Errorf("pki: sign CRL: %w", err)
	}
	return writeFileAtomic(dir.Path(DeviceCRL), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

func newCA(cn string, parent *x509.Certificate, parentKey crypto.Signer, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"cmg dev"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	} else {
		tmpl.MaxPathLenZero = true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func leafTemplate(now time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: randomSerial(),
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func issue(dir Dir, certName, keyName string, tmpl, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("pki: issue %s: %w", certName, err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if ca.Subject.String() != ca.Issuer.String() {
		// An intermediate: send it along so verifiers need only the root.
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...)
	}
	if err := writeKey(dir.Path(keyName), key); err != nil {
		return err
	}
	return writeFileAtomic(dir.Path(certName), chain, 0o644)
}

func writePair(dir Dir, certName, keyName string, cert *x509.Certificate, key crypto.Signer) error {
	if err := writeKey(dir.Path(keyName), key); err != nil {
		return err
	}
	return writeFileAtomic(dir.Path(certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func loadPair(dir Dir, certName, keyName string) (*x509.Certificate, crypto.Signer, error) {
	certs, err := ReadCertificates(dir.Path(certName))
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(dir.Path(keyName))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, nil, fmt.Errorf("pki: %s: no PEM key", dir.Path(keyName))
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", dir.Path(keyName), err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("pki: key is not a signer")
	}
	return certs[0], signer, nil
}

// ReadCertificates reads every CERTIFICATE block of a PEM file (other blocks are
// skipped): the one reader of certificate files for the gateway, the connector
// and the load tester.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("pki: %s: no PEM certificate found", file)
	}
	return certs, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func firstOr(s []string, def string) string {
	for _, x := range s {
		if x != "" && net.ParseIP(x) == nil {
			return x
		}
	}
	return def
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func containsIP(s []net.IP, ip net.IP) bool {
	for _, y := range s {
		if y.Equal(ip) {
			return true
		}
	}
	return false
}
