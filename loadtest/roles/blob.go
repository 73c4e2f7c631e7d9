package roles

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// BlobReader reads the deterministic bytes of a blob: byte i of the blob with seed s
// depends only on (s, i), so any range can be produced on the fly without holding the
// blob in memory, and a test can compute the expected bytes or hash independently.
// It implements io.ReadSeeker (what http.ServeContent needs for Range) and io.WriterTo.
type BlobReader struct {
	seed uint64
	size int64
	off  int64
}

// NewBlobReader returns a reader of size deterministic bytes generated from seed.
func NewBlobReader(seed uint64, size int64) *BlobReader {
	return &BlobReader{seed: seed, size: size}
}

// Size is the blob's length.
func (b *BlobReader) Size() int64 { return b.size }

// blobWord is the 8-byte word k of the blob with this seed.
func blobWord(seed uint64, k int64) uint64 {
	return splitmix64(seed*golden ^ uint64(k)*0xd1b54a32d192ed03 + golden)
}

// Read fills p with the next bytes of the blob.
func (b *BlobReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if rem := b.size - b.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	fillBlob(b.seed, b.off, p)
	b.off += int64(len(p))
	return len(p), nil
}

// fillBlob writes the blob bytes starting at off into p.
func fillBlob(seed uint64, off int64, p []byte) {
	var w [8]byte
	// Unaligned head: copy the tail of the word holding off.
	if r := int(off & 7); r != 0 {
		binary.LittleEndian.PutUint64(w[:], blobWord(seed, off>>3))
		n := copy(p, w[r:])
		p, off = p[n:], off+int64(n)
	}
	k := off >> 3
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, blobWord(seed, k))
		p, k = p[8:], k+1
	}
	if len(p) > 0 {
		binary.LittleEndian.PutUint64(w[:], blobWord(seed, k))
		copy(p, w[:])
	}
}

var errSeek = errors.New("roles: seek to a negative position")

// Seek implements io.Seeker.
func (b *BlobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return b.off, errors.New("roles: bad whence")
	}
	if offset < 0 {
		return b.off, errSeek
	}
	b.off = offset
	return offset, nil
}

// WriteTo writes the rest of the blob to w through one pooled buffer.
func (b *BlobReader) WriteTo(w io.Writer) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for b.off < b.size {
		n, _ := b.Read(buf)
		m, err := w.Write(buf[:n])
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// blobETag is the strong entity tag of a blob: it changes with the seed or the size.
func blobETag(seed uint64, size int64) string {
	return `"` + strconv.FormatUint(seed, 16) + "-" + strconv.FormatInt(size, 16) + `"`
}
