package gateway

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
)

// reads is a reader that returns the given read sizes in turn, then EOF.
type reads struct {
	sizes []int
	err   error // after the sizes, instead of EOF
}

func (r *reads) Read(p []byte) (int, error) {
	if len(r.sizes) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := min(r.sizes[0], len(p))
	r.sizes[0] -= n
	if r.sizes[0] == 0 {
		r.sizes = r.sizes[1:]
	}
	for i := range n {
		p[i] = 'x'
	}
	return n, nil
}

// writes records the size of each write.
type writes struct{ sizes []int }

func (w *writes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

func TestCopyGathered(t *testing.T) {
	const rec = tlsRecordPayload
	boom := errors.New("device gone")
	tests := []struct {
		name       string
		reads      []int
		err        error
		buf        int
		whole      bool
		wantWrites []int
		wantErr    error
	}{
		{"streamed at speed: one write per buffer", []int{rec, rec, rec, rec}, nil, 64 << 10, false, []int{64 << 10}, nil},
		{"streamed, more than a buffer", []int{rec, rec, rec, rec, rec, 100}, nil, 64 << 10, false, []int{64 << 10, rec + 100}, nil},
		{"streamed: a short read goes on at once", []int{rec, 500, rec, rec}, nil, 64 << 10, false, []int{rec + 500, 2 * rec}, nil},
		{"streamed: small reads are not held", []int{10, 20, 30}, nil, 64 << 10, false, []int{10, 20, 30}, nil},
		{"known length: reads off the record boundaries fill the buffer", []int{3900, 12484, rec, rec, rec, 100}, nil, 64 << 10, true, []int{64 << 10, 3900 + 12484 + 100 + 3*rec - 64<<10}, nil},
		{"known length: small reads gathered", []int{10, 20, 30}, nil, 64 << 10, true, []int{60}, nil},
		{"a failure after some bytes", []int{rec, rec}, boom, 64 << 10, true, []int{2 * rec}, boom},
		{"nothing", nil, nil, 64 << 10, true, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &writes{}
			total := 0
			for _, n := range tt.reads {
				total += n
			}
			n, err := copyGathered(w, &reads{sizes: append([]int(nil), tt.reads...), err: tt.err}, make([]byte, tt.buf), tt.whole)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != int64(total) {
				t.Errorf("copied %d bytes, want %d", n, total)
			}
			if !slices.Equal(w.sizes, tt.wantWrites) {
				t.Errorf("writes %v, want %v", w.sizes, tt.wantWrites)
			}
		})
	}
}

func TestCopyGatheredKeepsTheBytes(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789"), 20000)
	var dst bytes.Buffer
	if _, err := copyGathered(&dst, bytes.NewReader(src), make([]byte, 64<<10), true); err != nil || !bytes.Equal(dst.Bytes(), src) {
		t.Fatalf("copied %d bytes (%v), want the %d sent", dst.Len(), err, len(src))
	}
}
