package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ServerChain is a server certificate chain written to files.
type ServerChain struct {
	// CertFile holds the leaf, the intermediate and the root, as IIS sends
	// them; KeyFile the leaf's key; RootFile the root devices must trust.
	CertFile, KeyFile, RootFile string
}

// WriteOriginalServerChain writes the kind of server chain the original
// product serves devices, into dir: an RSA-2048 leaf for hosts, issued by an
// RSA-2048 intermediate under an RSA-2048 root, each carrying the extensions a
// public CA puts in (authority information access, CRL distribution point,
// certificate policies, key identifiers, two SCTs). The service certificate
// of the original is a public (or enterprise) certificate of that shape, and
// the original's servers (IIS on Windows, whose SChannel sends the whole chain
// it builds, the root included: SSL Labs' "contains anchor") send all three:
// that is what a device receives on every full handshake.
func WriteOriginalServerChain(dir string, hosts []string) (ServerChain, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ServerChain{}, err
	}
	now := time.Now()
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return ServerChain{}, err
	}
	interKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return ServerChain{}, err
	}
	leafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return ServerChain{}, err
	}
	policy := []asn1.ObjectIdentifier{{2, 23, 140, 1, 2, 2}} // CA/B Forum OV
	root := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "cmg Load Test Root CA 2024", Organization: []string{"cmg load test"}, Country: []string{"US"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return ServerChain{}, err
	}
	root, _ = x509.ParseCertificate(rootDER)
	inter := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "cmg Load Test TLS RSA SHA256 2024 CA1", Organization: []string{"cmg load test"}, Country: []string{"US"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		OCSPServer:            []string{"http://ocsp.loadtest.example.com"},
		IssuingCertificateURL: []string{"http://cacerts.loadtest.example.com/cmgLoadTestRootCA2024.crt"},
		CRLDistributionPoints: []string{"http://crl.loadtest.example.com/cmgLoadTestRootCA2024.crl"},
		PolicyIdentifiers:     []asn1.ObjectIdentifier{{2, 23, 140, 1, 1}, {2, 23, 140, 1, 2, 1}, {2, 23, 140, 1, 2, 2}, {2, 23, 140, 1, 2, 3}},
	}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return ServerChain{}, err
	}
	inter, _ = x509.ParseCertificate(interDER)
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: firstHost(hosts), Organization: []string{"Contoso Ltd"}, Locality: []string{"Redmond"}, Province: []string{"Washington"}, Country: []string{"US"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(395 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		OCSPServer:            []string{"http://ocsp.loadtest.example.com"},
		IssuingCertificateURL: []string{"http://cacerts.loadtest.example.com/cmgLoadTestTLSRSASHA2562024CA1.crt"},
		CRLDistributionPoints: []string{"http://crl3.loadtest.example.com/cmgLoadTestTLSRSASHA2562024CA1.crl", "http://crl4.loadtest.example.com/cmgLoadTestTLSRSASHA2562024CA1.crl"},
		PolicyIdentifiers:     policy,
		ExtraExtensions:       []pkix.Extension{sctList()},
	}
	for _, h := range append(hosts, "localhost", "127.0.0.1") {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else if h != "" {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return ServerChain{}, err
	}
	sc := ServerChain{
		CertFile: filepath.Join(dir, "original-server.pem"),
		KeyFile:  filepath.Join(dir, "original-server-key.pem"),
		RootFile: filepath.Join(dir, "original-root.pem"),
	}
	certPEM := append(append(pemCert(leafDER), pemCert(interDER)...), pemCert(rootDER)...)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return ServerChain{}, err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{sc.CertFile, certPEM, 0o644},
		{sc.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{sc.RootFile, pemCert(rootDER), 0o644},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return ServerChain{}, fmt.Errorf("identity: %w", err)
		}
	}
	return sc, nil
}

// sctList is the signed certificate timestamps a public CA embeds in every
// leaf (certificate transparency, required by browsers since 2018): two SCTs
// of the usual shape (v1, 32-byte log ID, timestamp, ECDSA P-256 signature).
// Nobody verifies them here; they give the leaf its real size.
func sctList() pkix.Extension {
	var list []byte
	for range 2 {
		sct := []byte{0}                             // version v1
		sct = append(sct, randomBytes(32)...)        // log ID
		sct = append(sct, 0, 0, 1, 0x8f, 0, 0, 0, 0) // timestamp
		sct = append(sct, 0, 0)                      // no extensions
		sig := append([]byte{0x30, 0x45, 0x02, 0x20}, randomBytes(32)...)
		sig = append(sig, 0x02, 0x21, 0x00)
		sig = append(sig, randomBytes(32)...)
		sct = append(sct, 4, 3, byte(len(sig)>>8), byte(len(sig))) // SHA-256, ECDSA
		sct = append(sct, sig...)
		list = append(list, byte(len(sct)>>8), byte(len(sct)))
		list = append(list, sct...)
	}
	inner := append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)
	value, _ := asn1.Marshal(inner)
	return pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}, Value: value}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func firstHost(hosts []string) string {
	for _, h := range hosts {
		if net.ParseIP(h) == nil && h != "" {
			return h
		}
	}
	return "localhost"
}

// DescribeChain summarises a chain a server showed: key type and size of each
// certificate, for reports ("RSA-2048 leaf + RSA-2048 intermediate").
func DescribeChain(certs []*x509.Certificate) string {
	s := ""
	for i, c := range certs {
		if i > 0 {
			s += " + "
		}
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			s += fmt.Sprintf("RSA-%d", k.N.BitLen())
		default:
			s += c.PublicKeyAlgorithm.String()
		}
		switch {
		case i == 0:
			s += " leaf"
		case c.Subject.String() == c.Issuer.String():
			s += " root"
		default:
			s += " intermediate"
		}
	}
	return s
}

// IsOriginalChain reports whether certs look like the original's chain: an
// RSA-2048 leaf sent with at least one RSA-2048 intermediate.
func IsOriginalChain(certs []*x509.Certificate) bool {
	if len(certs) < 2 {
		return false
	}
	for _, c := range certs[:2] {
		k, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok || k.N.BitLen() != 2048 {
			return false
		}
	}
	return true
}
