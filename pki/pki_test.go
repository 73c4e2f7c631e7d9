package pki

import (
	"crypto/x509"
	"net/url"
	"testing"
	"time"
)

func TestInitIssueRevoke(t *testing.T) {
	d := Dir(t.TempDir())
	now := time.Now()
	if err := Init(d, InitOptions{Hosts: []string{"cmg.example.com"}, CRLURL: "http://crl.example/device.crl", Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := Init(d, InitOptions{}); err == nil {
		t.Error("Init over an existing PKI succeeded, want a refusal")
	}
	if err := IssueClient(d, "dev-1", now); err != nil {
		t.Fatal(err)
	}
	if err := IssueConnector(d, "site1", "cp1", now); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	root, _ := ReadCertificates(d.Path(RootCert))
	roots.AddCert(root[0])

	client, err := ReadCertificates(d.Path(ClientCert("dev-1")))
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, c := range client[1:] {
		inter.AddCert(c)
	}
	if _, err := client[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not chain to the root through the device CA: %v", err)
	}
	if got := client[0].CRLDistributionPoints; len(got) != 1 || got[0] != "http://crl.example/device.crl" {
		t.Errorf("CRL distribution points %v", got)
	}
	server, _ := ReadCertificates(d.Path(GatewayCert))
	if err := server[0].VerifyHostname("cmg.example.com"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	if err := server[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	conn, _ := ReadCertificates(d.Path(ConnectorCert("cp1")))
	if site, name, ok := ParseConnectorURI(conn[0].URIs[0]); !ok || site != "site1" || name != "cp1" {
		t.Errorf("connector identity %v -> %s/%s %v", conn[0].URIs, site, name, ok)
	}

	crl, err := ReadCRL(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("fresh CRL lists %d revocations", len(crl.RevokedCertificateEntries))
	}
	for i := 0; i < 2; i++ { // revoking twice is harmless
		if err := Revoke(d, d.Path(ClientCert("dev-1")), now); err != nil {
			t.Fatal(err)
		}
	}
	crl, _ = ReadCRL(d)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(client[0].SerialNumber) != 0 {
		t.Errorf("CRL entries %v, want the client's serial", crl.RevokedCertificateEntries)
	}
	ca, _ := ReadCertificates(d.Path(DeviceCACert))
	if err := crl.CheckSignatureFrom(ca[0]); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if crl.Number.Int64() != 2 {
		t.Errorf("CRL number %v, want 2", crl.Number)
	}
	if err := Revoke(d, d.Path(ConnectorCert("cp1")), now); err == nil {
		t.Error("revoking a connector certificate with the device CA succeeded")
	}
}

func TestParseConnectorURI(t *testing.T) {
	tests := []struct {
		in         string
		site, name string
		ok         bool
	}{
		{"cmg://site1/cp1", "site1", "cp1", true},
		{"cmg://site1/", "", "", false},
		{"cmg://site1/a/b", "", "", false},
		{"https://site1/cp1", "", "", false},
		{"cmg://u@site1/cp1", "", "", false},
		{"cmg://site1/cp1?x=1", "", "", false},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.in)
		site, name, ok := ParseConnectorURI(u)
		if site != tt.site || name != tt.name || ok != tt.ok {
			t.Errorf("ParseConnectorURI(%s) = %q, %q, %v; want %q, %q, %v", tt.in, site, name, ok, tt.site, tt.name, tt.ok)
		}
	}
}

func TestNamesRefused(t *testing.T) {
	d := Dir(t.TempDir())
	if err := Init(d, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"", "a/b", "../x", "spaces here"} {
		if err := IssueClient(d, n, time.Now()); err == nil {
			t.Errorf("IssueClient(%q) succeeded", n)
		}
	}
}
