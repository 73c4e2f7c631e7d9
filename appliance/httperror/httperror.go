// Package httperror is the error contract of DESIGN section 8: every error the
// gateway or the connector makes itself is one of these reasons, answered with its
// status, a `CMG-Error: <Reason>` header and a small JSON body. Mapping an error to
// a status happens here and nowhere else.
package httperror

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Header is the response header that carries the reason.
const Header = "CMG-Error"

// Reason is one of the error reasons of DESIGN section 8.
type Reason string

// The reasons, in the order of DESIGN section 8.
const (
	BadRequest                Reason = "BadRequest"
	MethodNotAllowed          Reason = "MethodNotAllowed"
	ClientCertificateRequired Reason = "ClientCertificateRequired"
	ClientCertificateRevoked  Reason = "ClientCertificateRevoked"
	InvalidToken              Reason = "InvalidToken"
	PolicyDenied              Reason = "PolicyDenied"
	RouteNotFound             Reason = "RouteNotFound"
	RequestTooLarge           Reason = "RequestTooLarge"
	RateLimited               Reason = "RateLimited"
	ConnectorUnavailable      Reason = "ConnectorUnavailable"
	BackendUnavailable        Reason = "BackendUnavailable"
	BackendTimeout            Reason = "BackendTimeout"
	EgressBudgetExceeded      Reason = "EgressBudgetExceeded"
	Overloaded                Reason = "Overloaded"
	Draining                  Reason = "Draining"
	ClientClosed              Reason = "ClientClosed"
)

// StatusClientClosed is the status logged (never sent) for ClientClosed.
const StatusClientClosed = 499

// Reasons lists every reason, so metrics can create their series up front.
var Reasons = []Reason{
	BadRequest, MethodNotAllowed, ClientCertificateRequired, ClientCertificateRevoked,
	InvalidToken, PolicyDenied, RouteNotFound, RequestTooLarge, RateLimited,
	ConnectorUnavailable, BackendUnavailable, BackendTimeout, EgressBudgetExceeded,
	Overloaded, Draining, ClientClosed,
}

// Status is the HTTP status of the reason.
func (r Reason) Status() int {
	switch r {
	case BadRequest:
		return http.StatusBadRequest
	case MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case ClientCertificateRequired, ClientCertificateRevoked, PolicyDenied:
		return http.StatusForbidden
	case InvalidToken:
		return http.StatusUnauthorized
	case RouteNotFound:
		return http.StatusNotFound
	case RequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case RateLimited:
		return http.StatusTooManyRequests
	case ConnectorUnavailable, EgressBudgetExceeded, Overloaded, Draining:
		return http.StatusServiceUnavailable
	case BackendUnavailable:
		return http.StatusBadGateway
	case BackendTimeout:
		return http.StatusGatewayTimeout
	case ClientClosed:
		return StatusClientClosed
	}
	return http.StatusInternalServerError
}

// Valid reports whether r is one of the reasons of DESIGN section 8.
func (r Reason) Valid() bool {
	for _, x := range Reasons {
		if x == r {
			return true
		}
	}
	return false
}

// Error is an error with a reason. Detail is safe to show to the device; Err, the
// cause, is for logs only.
type Error struct {
	Reason     Reason
	Detail     string
	RetryAfter time.Duration
	Err        error
}

// New returns an error with a reason and a detail for the device.
func New(r Reason, detail string) *Error {
	return &Error{Reason: r, Detail: detail}
}

// Wrap returns an error with a reason, a detail for the device and a cause.
func Wrap(r Reason, detail string, cause error) *Error {
	return &Error{Reason: r, Detail: detail, Err: cause}
}

func (e *Error) Error() string {
	s := string(e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason carried by err, and false when err has none.
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return "", false
}

// As returns err as an *Error, giving errors without a reason the fallback reason.
func As(err error, fallback Reason) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Reason: fallback, Err: err}
}

// Write answers the request with the error: status, CMG-Error header, Retry-After
// when set, and the JSON body. ClientClosed writes nothing: the device is gone.
func Write(w http.ResponseWriter, requestID string, e *Error) {
	if e.Reason == ClientClosed {
		return
	}
	h := w.Header()
	h.Set(Header, string(e.Reason))
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	body := AppendJSON(nil, e.Reason, e.Detail, requestID)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Reason.Status())
	_, _ = w.Write(body)
}

// AppendJSON appends the JSON body {"error":..,"detail":..,"request_id":..} and a
// newline to b, without reflection.
func AppendJSON(b []byte, r Reason, detail, requestID string) []byte {
	b = append(b, `{"error":`...)
	b = strconv.AppendQuote(b, string(r))
	b = append(b, `,"detail":`...)
	b = appendJSONString(b, detail)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, requestID)
	b = append(b, "}\n"...)
	return b
}

// appendJSONString appends s as a JSON string. strconv.AppendQuote is not JSON (it
// emits \x escapes), so control and non-ASCII bytes are escaped here as \u.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 || r == '<' || r == '>' || r == '&':
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = append(b, string(r)...)
		}
	}
	return append(b, '"')
}
