package gateway

import "io"

// uploadBufferSize is the buffer a request body crosses the gateway in: one
// tunnel frame per buffer when the device sends at speed.
const uploadBufferSize = 64 << 10

// tlsRecordPayload is the most a read of the device's TLS connection returns:
// one record's plaintext.
const tlsRecordPayload = 16 << 10

// copyGathered copies src to dst as io.CopyBuffer does, but gathers reads into
// buf before each write: a 64 KiB body then crosses the tunnel as one yamux
// frame and its TLS records, not a frame per device read (each a record and a
// system call more on the tunnel, and a frame more for the connector).
//
// A body of known length (whole) fills buf or ends: its bytes are all coming,
// and the role answers once it has them, so holding up to a buffer of them
// costs nothing but the last buffer's trip. A streamed (chunked) body may be
// paced by the device: its reads are gathered only while they come back as
// whole TLS records (a device sending at speed fills records), and a short
// read goes on at once.
func copyGathered(dst io.Writer, src io.Reader, buf []byte, whole bool) (int64, error) {
	var written int64
	for {
		n, rerr := gather(src, buf, whole)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// gather reads into buf until it is full, src fails or ends, or (unless
// whole) a read comes back short of a whole record.
func gather(src io.Reader, buf []byte, whole bool) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if !whole && m < tlsRecordPayload {
			return n, nil
		}
	}
	return n, nil
}
