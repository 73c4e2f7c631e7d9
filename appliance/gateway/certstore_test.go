package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate with serial and its key.
func writePair(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gw"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	// Written beside and renamed over, as certificate tools do.
	for path, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: kder}} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCertStoreReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, certFile, keyFile, 1)
	s, err := newCertStore(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 { c, _ := s.get(nil); return c.Leaf.SerialNumber.Int64() }

	steps := []struct {
		name       string
		change     func()
		wantTried  bool
		wantErr    bool
		wantSerial int64
	}{
		{"unchanged", func() {}, false, false, 1},
		{"renewed", func() { writePair(t, certFile, keyFile, 2) }, true, false, 2},
		{"key of another pair: kept the old", func() {
			other := filepath.Join(dir, "other")
			writePair(t, other+".pem", other+"-key.pem", 3)
			if err := os.Rename(other+"-key.pem", keyFile); err != nil {
				t.Fatal(err)
			}
		}, true, true, 2},
		{"the same broken version is not retried", func() {}, false, false, 2},
		{"fixed", func() { writePair(t, certFile, keyFile, 4) }, true, false, 4},
		{"file gone: kept", func() { os.Remove(certFile) }, true, true, 4},
	}
	for _, st := range steps {
		st.change()
		tried, err := s.reloadIfChanged()
		if tried != st.wantTried || (err != nil) != st.wantErr {
			t.Errorf("%s: got tried %v, err %v; want tried %v, error %v", st.name, tried, err, st.wantTried, st.wantErr)
		}
		if got := serial(); got != st.wantSerial {
			t.Errorf("%s: serving serial %d, want %d", st.name, got, st.wantSerial)
		}
	}
}
