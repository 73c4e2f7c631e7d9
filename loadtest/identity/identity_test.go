package identity

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/sitetoken"
)

func TestIssuerFromDemoPKI(t *testing.T) {
	dir := pki.Dir(t.TempDir())
	if err := pki.Init(dir, pki.InitOptions{Hosts: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pem, _ := os.ReadFile(dir.Path(pki.RootCert))
	roots.AppendCertsFromPEM(pem)
	for _, kt := range []KeyType{ECDSA, RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			s, err := NewIssuer(dir.Path(pki.DeviceCACert), dir.Path(pki.DeviceCAKey), "dev", kt)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for i := range 20 {
				id, err := s.Identity(i)
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := x509.ParseCertificate(id.Certificate.Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				inter, _ := x509.ParseCertificate(id.Certificate.Certificate[1])
				ip := x509.NewCertPool()
				ip.AddCert(inter)
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: ip, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("device %d: %v", i, err)
				}
				if leaf.Subject.CommonName != DeviceName("dev", i) || seen[leaf.Subject.CommonName] {
					t.Errorf("device %d: CN %q, want a distinct %q", i, leaf.Subject.CommonName, DeviceName("dev", i))
				}
				seen[leaf.Subject.CommonName] = true
			}
		})
	}
	if _, err := NewIssuer(dir.Path(pki.DeviceCACert), dir.Path(pki.DeviceCAKey), "", "dsa"); err == nil {
		t.Error("accepted an unknown key type")
	}
}

func TestFilesAndTokens(t *testing.T) {
	dir := pki.Dir(t.TempDir())
	if err := pki.Init(dir, pki.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := pki.IssueClient(dir, n, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	f, err := NewFiles([]string{dir.Path(pki.ClientCert("a")), dir.Path(pki.ClientCert("b"))}, []string{dir.Path(pki.ClientKey("a")), dir.Path(pki.ClientKey("b"))})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a", "b", "a"} {
		if id, _ := f.Identity(i); id.Name != want {
			t.Errorf("device %d: got %s, want %s", i, id.Name, want)
		}
	}
	if _, err := NewFiles([]string{"x"}, nil); err == nil {
		t.Error("accepted a certificate without its key")
	}

	key, _ := sitetoken.GenerateKey()
	kf := filepath.Join(t.TempDir(), "site-key.pem")
	if err := sitetoken.WriteKey(kf, key); err != nil {
		t.Fatal(err)
	}
	st, err := NewSiteTokens(kf, "site1", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Identity(7)
	if err != nil {
		t.Fatal(err)
	}
	v, err := sitetoken.NewVerifier([]sitetoken.Key{{Site: "site1", ID: sitetoken.KeyID(&key.PublicKey), Public: &key.PublicKey}}, sitetoken.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(id.Token, sitetoken.Device)
	if err != nil || c.Subject != "loadtest-device-000007" || id.Certificate != nil {
		t.Errorf("got claims %+v, %v; want a device token for loadtest-device-000007", c, err)
	}
}

// TestOriginalServerChain checks the chain a device is shown: an RSA-2048 leaf,
// its RSA-2048 intermediate and the root (as IIS sends it), valid under the root.
func TestOriginalServerChain(t *testing.T) {
	sc, err := WriteOriginalServerChain(t.TempDir(), []string{"cmg.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(sc.CertFile, sc.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		c, _ := x509.ParseCertificate(der)
		chain = append(chain, c)
	}
	if !IsOriginalChain(chain) || DescribeChain(chain) != "RSA-2048 leaf + RSA-2048 intermediate + RSA-2048 root" {
		t.Errorf("got %s, want RSA-2048 leaf + RSA-2048 intermediate + RSA-2048 root", DescribeChain(chain))
	}
	roots := x509.NewCertPool()
	pem, _ := os.ReadFile(sc.RootFile)
	roots.AppendCertsFromPEM(pem)
	ip := x509.NewCertPool()
	ip.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: "cmg.example.com", Roots: roots, Intermediates: ip}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if n := len(chain[0].Raw); n < 1400 {
		t.Errorf("leaf is %d bytes, want the size of a public CA's (about 1.5 KB)", n)
	}
	if !strings.Contains(DescribeChain(chain[:1]), "RSA-2048") || IsOriginalChain(chain[:1]) {
		t.Error("a leaf alone is not the original's chain")
	}
}
