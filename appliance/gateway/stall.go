package gateway

import (
	"errors"
	"io"

	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/tunnel"
)

// Containment of a misbehaving connector on the request path (SECURITY.md,
// "Connectors").

// noteStall tells the tunnel server whether the connector answered the stream:
// a response header that did not come in time counts towards its stall
// quarantine (tunnel/stall.go); any answer clears it.
func (g *Gateway) noteStall(sess *tunnel.Session, err error) {
	if err == nil {
		g.tun.StreamAnswered(sess)
		return
	}
	if r, ok := httperror.ReasonOf(err); ok && r == httperror.BackendTimeout {
		g.tun.StreamStalled(sess)
	}
}

// maxResponseHeader bounds the status line and header a connector may send:
// net/http's response reader has no bound of its own, so a connector sending
// an endless header would grow the gateway's memory until the response header
// timeout.
const maxResponseHeader = 1 << 20

// errResponseHeaderTooLarge is a connector's response header over the bound.
var errResponseHeaderTooLarge = errors.New("the connector's response header is larger than 1 MiB")

// responseHeaderLimit reads a stream, failing once more than left bytes were
// read while left >= 0; a negative left means no limit (the body).
type responseHeaderLimit struct {
	r    io.Reader
	left int64
}

func (l *responseHeaderLimit) Read(p []byte) (int, error) {
	if l.left < 0 {
		return l.r.Read(p)
	}
	if l.left == 0 {
		return 0, errResponseHeaderTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
