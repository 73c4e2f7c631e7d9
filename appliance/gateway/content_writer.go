package gateway

import (
	"crypto/sha256"
	"hash"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/contentcache"
	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// contentWriter is the device's response for content: it keeps the
// connection's progress deadline (long downloads are bounded by progress, never
// by a whole-body timeout), counts the bytes served by source, notes a device
// that went away, and copies with the gateway's pooled buffers.
type contentWriter struct {
	x      *exchange
	g      *Gateway
	rc     *http.ResponseController
	served prometheus.Counter
	lastDL time.Time
}

func (cs *contentServer) writer(x *exchange, src int) *contentWriter {
	return &contentWriter{x: x, g: cs.g, rc: http.NewResponseController(x.w), served: cs.m.served[src]}
}

func (w *contentWriter) Header() http.Header { return w.x.w.Header() }

func (w *contentWriter) WriteHeader(code int) { w.x.w.WriteHeader(code) }

func (w *contentWriter) Write(p []byte) (int, error) {
	progress := w.g.cfg.Client.ProgressTimeout
	if now := w.g.now(); now.Sub(w.lastDL) > progress/4 {
		_ = w.rc.SetWriteDeadline(now.Add(progress))
		w.lastDL = now
	}
	n, err := w.x.w.Write(p)
	w.served.Add(float64(n))
	if err != nil && w.x.reason == "" {
		w.x.reason = httperror.ClientClosed
		w.x.errMsg = err.Error()
	}
	return n, err
}

// ReadFrom copies src through a pooled buffer (http.ServeContent copies with
// io.CopyN, which would allocate one per response).
func (w *contentWriter) ReadFrom(src io.Reader) (int64, error) {
	buf := w.g.bufs.Get().(*[]byte)
	defer w.g.bufs.Put(buf)
	var total int64
	for {
		n, rerr := src.Read(*buf)
		if n > 0 {
			m, werr := w.Write((*buf)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *contentWriter) Unwrap() http.ResponseWriter { return w.x.w }

// verifier checks a whole file streamed through against its published size
// and SHA-256 before its last bytes are let go.
type verifier struct {
	info contentcache.Info
	h    hash.Hash
	n    int64
}

func newVerifier(info contentcache.Info) *verifier {
	return &verifier{info: info, h: sha256.New()}
}

// add hashes the next bytes and reports whether they may be sent: always
// before the end, and at the end only when the whole file is right.
func (v *verifier) add(p []byte) bool {
	v.h.Write(p)
	v.n += int64(len(p))
	if v.n < v.info.Size {
		return true
	}
	if v.n > v.info.Size {
		return false
	}
	var sum [32]byte
	v.h.Sum(sum[:0])
	return sum == v.info.SHA256
}
