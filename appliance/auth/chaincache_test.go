package auth

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// TestChainCache: a chain that verified is served from the cache to the next
// connection presenting it, with the same identity and chain; everything the
// cache must not change still holds on a hit.
func TestChainCache(t *testing.T) {
	root := newRootCA(t, "Root")
	inter := root.intermediate(t, "Issuing")
	other := newRootCA(t, "Other root").intermediate(t, "Other issuing")
	dir := t.TempDir()
	clock := newClock()
	v, err := NewCertVerifier(CertConfig{Roots: []string{writeCerts(t, dir, "root.pem", root.cert)}}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := inter.leaf(t, "device-0001")
	// A re-parsed copy, as each new TLS connection presents.
	reparse := func(c *x509.Certificate) *x509.Certificate {
		p, err := x509.ParseCertificate(c.Raw)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	first, err := v.Verify([]*x509.Certificate{leaf, inter.cert})
	if err != nil {
		t.Fatalf("first verification: %v", err)
	}
	if got := v.cache.entries.Len(); got != 1 {
		t.Fatalf("cached chains after one verification: got %d, want 1", got)
	}
	again, err := v.Verify([]*x509.Certificate{reparse(leaf), reparse(inter.cert)})
	if err != nil {
		t.Fatalf("second verification (cached): %v", err)
	}
	if again.Device != first.Device || again.Subject != first.Subject || len(again.Chain) != len(first.Chain) {
		t.Errorf("cached identity: got %s %q chain %d, want %s %q chain %d",
			again.Device, again.Subject, len(again.Chain), first.Device, first.Subject, len(first.Chain))
	}
	for i := range first.Chain {
		if !again.Chain[i].Equal(first.Chain[i]) {
			t.Errorf("cached chain[%d]: got %s, want %s", i, again.Chain[i].Subject, first.Chain[i].Subject)
		}
	}

	refused := []struct {
		name      string
		presented func() []*x509.Certificate
		advance   time.Duration
	}{
		// A chain to a root the gateway does not trust: verified, refused.
		{"chain to a foreign root", func() []*x509.Certificate { return []*x509.Certificate{other.leaf(t, "device-0001"), other.cert} }, 0},
		// The intermediate is missing: another key, and the chain cannot be built.
		{"leaf alone", func() []*x509.Certificate { return []*x509.Certificate{reparse(leaf)} }, 0},
		// Cached, but the leaf expired since (90 days): the hit is refused too.
		{"cached chain after the leaf expired", func() []*x509.Certificate { return []*x509.Certificate{reparse(leaf), reparse(inter.cert)} }, 91 * 24 * time.Hour},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			clock.Advance(tc.advance)
			_, err := v.Verify(tc.presented())
			var he *httperror.Error
			if !errors.As(err, &he) || he.Reason != httperror.ClientCertificateRequired {
				t.Fatalf("got %v, want %s", err, httperror.ClientCertificateRequired)
			}
		})
	}
	if got := v.cache.entries.Len(); got != 0 {
		t.Errorf("cached chains after the refusals: got %d, want 0 (failures are not cached, the expired one is dropped)", got)
	}
}

// TestChainKey: different lists of certificates never share a key.
func TestChainKey(t *testing.T) {
	a := &x509.Certificate{Raw: []byte("ab")}
	b := &x509.Certificate{Raw: []byte("c")}
	c := &x509.Certificate{Raw: []byte("a")}
	d := &x509.Certificate{Raw: []byte("bc")}
	cases := []struct {
		name string
		x, y []*x509.Certificate
	}{
		{"split differently", []*x509.Certificate{a, b}, []*x509.Certificate{c, d}},
		{"order", []*x509.Certificate{a, b}, []*x509.Certificate{b, a}},
		{"prefix", []*x509.Certificate{a}, []*x509.Certificate{a, b}},
	}
	for _, tc := range cases {
		if chainKey(tc.x) == chainKey(tc.y) {
			t.Errorf("%s: the two lists share a key", tc.name)
		}
	}
}

// BenchmarkVerify: a device's chain verified in full against served from the
// cache (what a reconnecting device costs the gateway).
func BenchmarkVerify(b *testing.B) {
	root := newRootCA(b, "Root")
	inter := root.intermediate(b, "Issuing")
	leaf := inter.leaf(b, "device-0001")
	roots := writeCerts(b, b.TempDir(), "root.pem", root.cert)
	for _, size := range []int{0, DefaultChainCacheSize} {
		name := "cache"
		if size == 0 {
			name = "no-cache"
		}
		b.Run(name, func(b *testing.B) {
			v, err := NewCertVerifier(CertConfig{Roots: []string{roots}}, func() time.Time { return t0 })
			if err != nil {
				b.Fatal(err)
			}
			v.cache = newChainCache(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify([]*x509.Certificate{leaf, inter.cert}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
