package roles

import (
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// siteCerts are the certificates the MP hands out as hex (MPCERT, SITESIGNCERT,
// MPKEYINFORMATION): real X.509 certificates, derived from the seed so that the same
// configuration always gives the same bytes. They are built on first use, because
// finding the RSA primes takes a few tens of milliseconds.
type siteCerts struct {
	seed   uint64
	mpName string

	once    sync.Once
	err     error
	siteHex string // site server signing certificate, uppercase hex DER
	mpHex   string // MP signing certificate
}

func newSiteCerts(cfg Config) (*siteCerts, error) {
	return &siteCerts{seed: cfg.Seed, mpName: cfg.Site.MPName}, nil
}

func (c *siteCerts) get() (site, mp string, err error) {
	c.once.Do(func() { c.err = c.build() })
	return c.siteHex, c.mpHex, c.err
}

// oidSMSSigning is the extended key usage CM puts on its self-signed signing
// certificates (SMS Signing Certificate) [SCH].
var oidSMSSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 101, 2}

func (c *siteCerts) build() error {
	key, err := deterministicRSAKey(newPRNG(c.seed, "site signing key"))
	if err != nil {
		return err
	}
	notBefore := time.Date(2024, time.January, 8, 9, 0, 0, 0, time.UTC)
	mk := func(serial int64, cn string) (string, error) {
		t := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{CommonName: cn},
			DNSNames:              []string{strings.ToLower(c.mpName)},
			NotBefore:             notBefore,
			NotAfter:              notBefore.AddDate(100, 0, 0),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageDataEncipherment,
			UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidSMSSigning},
			BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(nil, t, t, &key.PublicKey, key)
		if err != nil {
			return "", fmt.Errorf("certificate %q: %w", cn, err)
		}
		return strings.ToUpper(hex.EncodeToString(der)), nil
	}
	if c.siteHex, err = mk(0x5175, "Site Server"); err != nil {
		return err
	}
	c.mpHex, err = mk(0x4d50, "SMS Signing Certificate")
	return err
}

// deterministicRSAKey builds a 2048-bit RSA key from the generator. crypto/rsa ignores
// caller randomness, so the primes are searched here: random odd 1024-bit numbers with
// the top two bits set, stepped by 2 to the next probable prime.
func deterministicRSAKey(p *prng) (*rsa.PrivateKey, error) {
	e := big.NewInt(65537)
	prime := func() *big.Int {
		var b [128]byte
		for i := 0; i < len(b); i += 8 {
			binary.BigEndian.PutUint64(b[i:], p.next())
		}
		b[0] |= 0xC0
		b[127] |= 1
		n := new(big.Int).SetBytes(b[:])
		two, one := big.NewInt(2), big.NewInt(1)
		for {
			if n.ProbablyPrime(20) && new(big.Int).GCD(nil, nil, new(big.Int).Sub(n, one), e).Cmp(one) == 0 {
				return n
			}
			n.Add(n, two)
		}
	}
	pr, q := prime(), prime()
	one := big.NewInt(1)
	phi := new(big.Int).Mul(new(big.Int).Sub(pr, one), new(big.Int).Sub(q, one))
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(pr, q), E: 65537},
		D:         new(big.Int).ModInverse(e, phi),
		Primes:    []*big.Int{pr, q},
	}
	key.Precompute()
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("derived RSA key: %w", err)
	}
	return key, nil
}
