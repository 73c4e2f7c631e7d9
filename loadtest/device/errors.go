package device

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Reasons of failed exchanges that are not the gateway's own reason codes.
const (
	ReasonConnectRefused = "connect_refused"
	ReasonConnect        = "connect_failed"
	ReasonTLS            = "tls_handshake"
	ReasonTimeout        = "timeout"
	ReasonClosed         = "connection_closed"
	ReasonReset          = "connection_reset"
	ReasonProtocol       = "bad_response"
	ReasonCanceled       = "canceled"
)

// classify names a network error.
func classify(err error) string {
	var te *tlsError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonConnectRefused
	case errors.As(err, &te):
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
			return ReasonReset
		}
		return ReasonTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case isReset(err):
		return ReasonReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ReasonClosed
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return ReasonConnect
	}
	return ReasonProtocol
}
