package roles

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"strconv"
)

// splitmix64 is the finaliser of the SplitMix64 generator: a cheap bijective mixer
// whose outputs pass statistical tests. The blob generator calls it once per 8 bytes.
func splitmix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

const golden = 0x9e3779b97f4a7c15

// prng is a small deterministic generator (SplitMix64) for reply content. Replies are
// generated from a prng seeded by the configured seed and the request's key, so the
// same request always gets the same bytes.
type prng struct{ s uint64 }

// newPRNG returns a generator for the given seed and key.
func newPRNG(seed uint64, key string) *prng {
	return &prng{s: seed ^ keyHash(key)}
}

// keyHash is FNV-1a of key, the way a string becomes part of a seed.
func keyHash(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

func (p *prng) next() uint64 {
	p.s += golden
	return splitmix64(p.s)
}

// intn returns a number in [0, n); n must be positive.
func (p *prng) intn(n int) int {
	return int(p.next() % uint64(n))
}

// unit returns a number in (0, 1].
func (p *prng) unit() float64 {
	return (float64(p.next()>>11) + 1) / (1 << 53)
}

const hexUpper = "0123456789ABCDEF"

// appendHex appends n random uppercase hex digits.
func (p *prng) appendHex(b []byte, n int) []byte {
	for n > 0 {
		v := p.next()
		for i := 0; i < 16 && n > 0; i++ {
			b = append(b, hexUpper[v&0xF])
			v >>= 4
			n--
		}
	}
	return b
}

func (p *prng) hex(n int) string { return string(p.appendHex(nil, n)) }

// guid returns a GUID in registry form, {8-4-4-4-12} uppercase, as CM writes them.
func (p *prng) guid() string {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], p.next())
	binary.LittleEndian.PutUint64(raw[8:], p.next())
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	b := make([]byte, 0, 38)
	b = append(b, '{')
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexUpper[c>>4], hexUpper[c&0xF])
	}
	return string(append(b, '}'))
}

// sizeIn draws a size from [r.Min, r.Max] whose mean is close to r.Typical: an
// exponential tail above Min with mean Typical-Min, clipped at Max. Real policy and
// CI documents are mostly small with a few large ones; the mean is what the egress
// model (client-traffic.md section 6) prices.
func (p *prng) sizeIn(r SizeRange) int {
	if r.Max <= r.Min {
		return r.Min
	}
	v := float64(r.Min) - tailMean(r)*math.Log(p.unit())
	if v > float64(r.Max) {
		return r.Max
	}
	return int(v)
}

// tailMean is the mean m of the exponential tail such that, once clipped at Max,
// the sizes still average Typical: Min + m(1 - e^(-(Max-Min)/m)) = Typical. A few
// fixed-point steps converge because the clipped share is small.
func tailMean(r SizeRange) float64 {
	want, span := float64(r.Typical-r.Min), float64(r.Max-r.Min)
	m := want
	for range 8 {
		m = want / (1 - math.Exp(-span/m))
	}
	return m
}

// itoa is strconv.Itoa, short for the XML builders.
func itoa(n int) string { return strconv.Itoa(n) }
