package roles

import (
	"bytes"
	"compress/zlib"
	"sync"
)

// recordFunc appends record i of a generated document to b.
type recordFunc func(b []byte, p *prng, i int) []byte

// buildExact builds an ASCII document of exactly size bytes: head, as many records as
// fit, whitespace (legal between XML elements), tail. When head and tail alone exceed
// size, the document is just head and tail.
func buildExact(size int, head, tail string, p *prng, rec recordFunc) []byte {
	b := make([]byte, 0, max(size, len(head)+len(tail)))
	b = append(b, head...)
	var scratch []byte
	for i := 0; ; i++ {
		scratch = rec(scratch[:0], p, i)
		if len(scratch) == 0 || len(b)+len(scratch)+len(tail) > size {
			break
		}
		b = append(b, scratch...)
	}
	for len(b)+len(tail) < size {
		b = append(b, ' ')
	}
	return append(b, tail...)
}

// padded is head, whitespace up to size bytes, tail.
func padded(size int, head, tail string) []byte {
	return buildExact(size, head, tail, nil, func(b []byte, _ *prng, _ int) []byte { return b })
}

// Pooled zlib writers (one costs ~1 MB to create): BestSpeed for the generated
// documents, the default level for CCM messages, whose [D] sizes in
// client-traffic.md were computed with it.
var (
	zlibFast    = sync.Pool{New: func() any { w, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed); return w }}
	zlibDefault = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}
)

// zlibBytes compresses b at BestSpeed.
func zlibBytes(b []byte) []byte { return zlibWith(&zlibFast, b) }

func zlibWith(pool *sync.Pool, b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b)/2 + 64)
	zw := pool.Get().(*zlib.Writer)
	zw.Reset(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	pool.Put(zw)
	return out.Bytes()
}

// compressedToSize finds the document whose zlib form is closest to target bytes:
// gen(n) builds the uncompressed document for a size parameter n (monotonic in n).
// A few proportional steps reach a fraction of a percent, because the generated
// documents compress at a steady ratio.
func compressedToSize(target int, gen func(n int) []byte) []byte {
	n := target * 2
	var best []byte
	for range 5 {
		z := zlibBytes(gen(n))
		if best == nil || abs(len(z)-target) < abs(len(best)-target) {
			best = z
		}
		if abs(len(z)-target)*200 <= target {
			break
		}
		n = max(1, int(float64(n)*float64(target)/float64(len(z))))
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
