package sitetoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// GenerateKey returns a new site key (ECDSA P-256, as ES256 needs).
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// KeyID is the RFC 7638 JWK thumbprint of a P-256 public key: the default kid,
// the same wherever the key is loaded. It is empty for any other key.
func KeyID(pub *ecdsa.PublicKey) string {
	// For P-256 the uncompressed point is 0x04 || x (32 bytes) || y (32 bytes).
	b, err := pub.Bytes()
	if err != nil || pub.Curve != elliptic.P256() || len(b) != 65 {
		return ""
	}
	enc := base64.RawURLEncoding
	// The members in lexicographic order, no whitespace (RFC 7638 section 3.2).
	canon := `{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(b[1:33]) + `","y":"` + enc.EncodeToString(b[33:65]) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return enc.EncodeToString(sum[:])
}

// WriteKey writes key as a PKCS #8 PEM file readable by its owner only. It
// never overwrites an existing file.
func WriteKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("sitetoken: %w", err)
	}
	return writeNew(path, &pem.Block{Type: "PRIVATE KEY", Bytes: der}, 0o600)
}

// WritePublicKey writes pub as a PKIX "PUBLIC KEY" PEM file. It never
// overwrites an existing file.
func WritePublicKey(path string, pub *ecdsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("sitetoken: %w", err)
	}
	return writeNew(path, &pem.Block{Type: "PUBLIC KEY", Bytes: der}, 0o644)
}

func writeNew(path string, b *pem.Block, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("sitetoken: %w", err)
	}
	if err := pem.Encode(f, b); err != nil {
		f.Close()
		return fmt.Errorf("sitetoken: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sitetoken: write %s: %w", path, err)
	}
	return nil
}

// LoadKey reads a site key from a PEM file (PKCS #8 "PRIVATE KEY" or SEC 1
// "EC PRIVATE KEY").
func LoadKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	var key any
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("sitetoken: %s: a %q PEM block is not a private key", path, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("sitetoken: %s: %w", path, err)
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sitetoken: %s: not an ECDSA P-256 key", path)
	}
	return k, nil
}

// LoadPublicKey reads a site public key from a PKIX "PUBLIC KEY" PEM file.
func LoadPublicKey(path string) (*ecdsa.PublicKey, error) {
	b, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKeyPEM(pem.EncodeToMemory(b))
	if err != nil {
		return nil, fmt.Errorf("sitetoken: %s: %w", path, err)
	}
	return pub, nil
}

// ParsePublicKeyPEM parses the first PEM block of data as an ECDSA P-256 public key.
func ParsePublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	if b.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("a %q PEM block is not a public key", b.Type)
	}
	key, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	k, ok := key.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 public key")
	}
	return k, nil
}

func readPEM(path string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sitetoken: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("sitetoken: %s: no PEM block", path)
	}
	return b, nil
}
