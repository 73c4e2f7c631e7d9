package sitetoken

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := mustKey(t)
	keyFile, pubFile := filepath.Join(dir, "site.key"), filepath.Join(dir, "site.pub")
	if err := WriteKey(keyFile, key); err != nil {
		t.Fatal(err)
	}
	if err := WritePublicKey(pubFile, &key.PublicKey); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got key file mode %o, want 600", got)
	}
	loaded, err := LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Equal(key) {
		t.Error("got a different private key back")
	}
	pub, err := LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Error("got a different public key back")
	}
	if KeyID(pub) != KeyID(&key.PublicKey) || len(KeyID(pub)) != 43 {
		t.Errorf("got kid %q after loading, want %q (43 characters)", KeyID(pub), KeyID(&key.PublicKey))
	}
	if err := WriteKey(keyFile, mustKey(t)); err == nil {
		t.Error("WriteKey overwrote an existing file, want an error")
	}
	if err := WritePublicKey(pubFile, &key.PublicKey); err == nil {
		t.Error("WritePublicKey overwrote an existing file, want an error")
	}
	if _, err := LoadKey(pubFile); err == nil {
		t.Error("LoadKey accepted a public key file, want an error")
	}
	if _, err := LoadPublicKey(keyFile); err == nil {
		t.Error("LoadPublicKey accepted a private key file, want an error")
	}
}

func TestLoadKeySEC1(t *testing.T) {
	key := mustKey(t)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ec.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(f)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Error("got a different key back")
	}
}

func TestKeyIDDiffers(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	if KeyID(&a.PublicKey) == KeyID(&b.PublicKey) {
		t.Error("got the same kid for two keys")
	}
}
