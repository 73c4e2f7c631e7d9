package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultChainCacheSize is how many verified chains a gateway remembers: about
// 100 bytes each (the issuers are shared), so the default holds at most a few
// MiB.
const DefaultChainCacheSize = 65536

// maxCachedIssuers bounds the distinct issuing certificates the cache keeps:
// only chains that verified are cached, so these are the site's own CAs, a
// handful; a deployment with more simply verifies the rest every time.
const maxCachedIssuers = 1024

// chainCache remembers the chains it has verified, by a hash of the presented
// certificates. A device that connects again (each policy poll, when its TLS
// session is not resumed) presents the same chain, and x509 verification (two
// ECDSA or RSA signature checks and chain building) is the largest part of the
// gateway's work per new connection. What a hit skips is only that: the TLS
// handshake still proves the device holds the leaf's key, every certificate's
// validity period is checked against the clock on each hit, revocation is
// checked on every request, and a reload of the roots builds a new verifier
// with an empty cache. Failures are never cached.
type chainCache struct {
	entries *lru.Cache[[sha256.Size]byte, cachedChain]

	mu      sync.Mutex
	issuers map[[sha256.Size]byte]*x509.Certificate // interned: one copy each
}

// cachedChain is a verified chain without its leaf: the leaf of the presenting
// connection is used with it.
type cachedChain struct {
	issuers   []*x509.Certificate
	notBefore time.Time // latest NotBefore in the chain
	notAfter  time.Time // earliest NotAfter in the chain
}

func newChainCache(size int) *chainCache {
	if size <= 0 {
		return nil
	}
	entries, _ := lru.New[[sha256.Size]byte, cachedChain](size) // errs only for size <= 0
	return &chainCache{entries: entries, issuers: make(map[[sha256.Size]byte]*x509.Certificate)}
}

// key hashes the presented certificates, each length-prefixed so that no two
// different lists share a key.
func chainKey(presented []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range presented {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// get returns the verified chain for presented (leaf first) if it is cached
// and every certificate of it is valid at now.
func (c *chainCache) get(key [sha256.Size]byte, leaf *x509.Certificate, now time.Time) ([]*x509.Certificate, bool) {
	if c == nil {
		return nil, false
	}
	e, ok := c.entries.Get(key)
	if !ok {
		return nil, false
	}
	if now.Before(e.notBefore) || now.After(e.notAfter) {
		c.entries.Remove(key)
		return nil, false
	}
	chain := make([]*x509.Certificate, 0, 1+len(e.issuers))
	return append(append(chain, leaf), e.issuers...), true
}

// add remembers a chain that verified.
func (c *chainCache) add(key [sha256.Size]byte, chain []*x509.Certificate) {
	if c == nil || len(chain) == 0 {
		return
	}
	e := cachedChain{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	c.mu.Lock()
	for _, cert := range chain[1:] {
		ik := sha256.Sum256(cert.Raw)
		in, ok := c.issuers[ik]
		if !ok {
			if len(c.issuers) >= maxCachedIssuers {
				c.mu.Unlock()
				return
			}
			in = cert
			c.issuers[ik] = in
		}
		e.issuers = append(e.issuers, in)
		if in.NotBefore.After(e.notBefore) {
			e.notBefore = in.NotBefore
		}
		if in.NotAfter.Before(e.notAfter) {
			e.notAfter = in.NotAfter
		}
	}
	c.mu.Unlock()
	c.entries.Add(key, e)
}
