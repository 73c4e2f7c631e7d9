package pki

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

func readRootCRL(t *testing.T, d Dir) *x509.RevocationList {
	t.Helper()
	data, err := os.ReadFile(d.Path(RootCRL))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestCRLsCoverTheDeviceChainAndStayCurrent(t *testing.T) {
	d := Dir(t.TempDir())
	t0 := time.Now()
	if err := Init(d, InitOptions{Now: t0}); err != nil {
		t.Fatal(err)
	}
	if err := IssueClient(d, "dev1", t0); err != nil {
		t.Fatal(err)
	}
	root, _, err := loadPair(d, RootCert, RootKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := readRootCRL(t, d).CheckSignatureFrom(root); err != nil {
		t.Fatalf("root CRL not signed by the root CA: %v", err)
	}
	if err := Revoke(d, d.Path(ClientCert("dev1")), t0); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name            string
		at              time.Time
		wantDevNumber   int64
		wantRootNumber  int64
		removeRootFirst bool
	}{
		{"fresh CRLs are left alone", t0.Add(time.Hour), 2, 1, false},
		{"past half their validity: re-signed", t0.Add(4 * 24 * time.Hour), 3, 2, false},
		{"a missing root CRL is written", t0.Add(4*24*time.Hour + time.Minute), 3, 1, true},
	}
	for _, st := range steps {
		if st.removeRootFirst {
			os.Remove(d.Path(RootCRL))
		}
		if err := RenewCRLs(d, st.at); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		dev, err := ReadCRL(d)
		if err != nil {
			t.Fatal(err)
		}
		if dev.Number.Int64() != st.wantDevNumber || len(dev.RevokedCertificateEntries) != 1 {
			t.Errorf("%s: device CRL number %v with %d entries, want %d with the 1 revoked", st.name, dev.Number, len(dev.RevokedCertificateEntries), st.wantDevNumber)
		}
		if got := readRootCRL(t, d).Number.Int64(); got != st.wantRootNumber {
			t.Errorf("%s: root CRL number %d, want %d", st.name, got, st.wantRootNumber)
		}
		if !dev.NextUpdate.After(st.at) {
			t.Errorf("%s: device CRL expires %v, before %v", st.name, dev.NextUpdate, st.at)
		}
	}
}
