package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// crlSet is one parsed CRL: the revoked serials for a per-request lookup, and
// the issuers it was found correctly signed by, so a signature is checked once.
type crlSet struct {
	list    *x509.RevocationList
	revoked map[string]struct{}

	mu       sync.Mutex
	verified map[[sha256.Size]byte]error
}

// maxVerifiedIssuers bounds the signature cache of one CRL (normally one issuer).
const maxVerifiedIssuers = 8

// parseCRL parses a CRL in DER or PEM ("X509 CRL") form.
func parseCRL(data []byte) (*crlSet, error) {
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("a %q PEM block is not a CRL", b.Type)
		}
		data = b.Bytes
	}
	list, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	s := &crlSet{list: list, revoked: make(map[string]struct{}, len(list.RevokedCertificateEntries))}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			s.revoked[serialKey(e.SerialNumber)] = struct{}{}
		}
	}
	return s, nil
}

func serialKey(n *big.Int) string { return n.Text(16) }

// isRevoked reports whether the CRL lists serial.
func (s *crlSet) isRevoked(serial *big.Int) bool {
	_, ok := s.revoked[serialKey(serial)]
	return ok
}

// fresh reports whether the CRL is still current at now: before its nextUpdate
// (a CRL without one is current until it is refreshed).
func (s *crlSet) fresh(now time.Time) bool {
	return s.list.NextUpdate.IsZero() || !now.After(s.list.NextUpdate)
}

// coversIssuer reports whether the CRL names issuer as its issuer.
func (s *crlSet) coversIssuer(issuer *x509.Certificate) bool {
	return bytes.Equal(s.list.RawIssuer, issuer.RawSubject)
}

// checkIssuer checks that issuer issued and signed the CRL, once per issuer.
func (s *crlSet) checkIssuer(issuer *x509.Certificate) error {
	if !s.coversIssuer(issuer) {
		return errors.New("the CRL is issued by another CA than the certificate")
	}
	h := sha256.Sum256(issuer.Raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err, ok := s.verified[h]; ok {
		return err
	}
	err := s.list.CheckSignatureFrom(issuer)
	if err != nil {
		err = fmt.Errorf("the CRL signature does not verify: %w", err)
	}
	if s.verified == nil || len(s.verified) >= maxVerifiedIssuers {
		s.verified = make(map[[sha256.Size]byte]error, 1)
	}
	s.verified[h] = err
	return err
}
