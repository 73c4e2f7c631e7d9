package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// maxJWKSBytes bounds a JWKS document (Azure AD's is a few KiB).
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus a JWKS key may have.
const minRSABits = 2048

// verifyKey is one signing key of an issuer.
type verifyKey struct {
	key crypto.PublicKey
	// alg is the key's `alg` member; empty when the JWKS does not pin one.
	alg string
}

// jwk is the part of an RFC 7517 JSON Web Key that verification needs.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS decodes a JWKS document into its signing keys by kid. Keys that are
// not for signatures, have no kid, are symmetric or of an unknown type are
// skipped; a set with no usable key is an error, so a broken document never
// replaces a working one.
func parseJWKS(data []byte) (map[string]verifyKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys := make(map[string]verifyKey, len(doc.Keys))
	var skipped []error
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			skipped = append(skipped, fmt.Errorf("key %d: duplicate kid %q", i, k.Kid))
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, k.Kid, err))
			continue
		}
		keys[k.Kid] = verifyKey{key: pub, alg: k.Alg}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS has no usable signing key: %w", errors.Join(skipped...))
	}
	return keys, nil
}

func (k *jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		return k.rsa()
	case "EC":
		return k.ec()
	case "OKP":
		return k.okp()
	}
	return nil, fmt.Errorf("key type %q is not accepted", k.Kty)
}

func (k *jwk) rsa() (crypto.PublicKey, error) {
	n, err := b64(k.N)
	if err != nil || len(n) == 0 || n[0] == 0 {
		return nil, errors.New("bad RSA modulus")
	}
	e, err := b64(k.E)
	if err != nil || len(e) == 0 || len(e) > 4 || e[0] == 0 {
		return nil, errors.New("bad RSA exponent")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, want at least %d", pub.N.BitLen(), minRSABits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return nil, fmt.Errorf("bad RSA exponent %d", pub.E)
	}
	return pub, nil
}

func (k *jwk) ec() (crypto.PublicKey, error) {
	var curve elliptic.Curve
	switch k.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("curve %q is not accepted", k.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, errX := b64(k.X)
	y, errY := b64(k.Y)
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return nil, errors.New("bad EC point")
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("bad EC point: %w", err)
	}
	return pub, nil
}

func (k *jwk) okp() (crypto.PublicKey, error) {
	if k.Crv != "Ed25519" {
		return nil, fmt.Errorf("curve %q is not accepted", k.Crv)
	}
	x, err := b64(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("bad Ed25519 key")
	}
	return ed25519.PublicKey(x), nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// keyFits reports whether key can verify alg, so a token cannot pick an
// algorithm its key was not made for.
func keyFits(alg string, key crypto.PublicKey) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
