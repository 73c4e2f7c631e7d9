package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

// RootCRL is the root CA's CRL. It covers the device issuing CA, so a gateway
// that checks revocation can establish the status of the whole device chain
// (leaf by the device CRL, issuing CA by this one).
const RootCRL = "ca.crl"

// WriteRootCRL signs an empty root CRL with the root CA.
func WriteRootCRL(dir Dir, now time.Time) error {
	return writeRootCRL(dir, nil, big.NewInt(1), now)
}

func writeRootCRL(dir Dir, entries []x509.RevocationListEntry, number *big.Int, now time.Time) error {
	root, rootKey, err := loadPair(dir, RootCert, RootKey)
	if err != nil {
		return err
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(crlValidity),
	}, root, rootKey)
	if err != nil {
		return fmt.Errorf("pki: sign root CRL: %w", err)
	}
	return writeFileAtomic(dir.Path(RootCRL), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// RenewCRLs re-signs the device CRL and the root CRL (writing the root CRL when
// there is none) with their entries and the next CRL number, when they are
// past half their validity, so a dev PKI kept for weeks still has current
// CRLs. A gateway reloads changed CRL files by itself.
func RenewCRLs(dir Dir, now time.Time) error {
	crl, err := ReadCRL(dir)
	if err != nil {
		return err
	}
	if stale(crl, now) {
		if err := writeCRL(dir, crl.RevokedCertificateEntries, new(big.Int).Add(crl.Number, big.NewInt(1)), now); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(dir.Path(RootCRL))
	if os.IsNotExist(err) {
		return WriteRootCRL(dir, now)
	}
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	root, err := x509.ParseRevocationList(data)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", dir.Path(RootCRL), err)
	}
	if stale(root, now) {
		return writeRootCRL(dir, root.RevokedCertificateEntries, new(big.Int).Add(root.Number, big.NewInt(1)), now)
	}
	return nil
}

func stale(crl *x509.RevocationList, now time.Time) bool {
	half := crl.ThisUpdate.Add(crl.NextUpdate.Sub(crl.ThisUpdate) / 2)
	return !now.Before(half)
}
