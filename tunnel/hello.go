package tunnel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The hello frame: magic, version, frame type, a big-endian length, then JSON.
//
//	+------+---------+------+-----------+-----------------+
//	| cmgT | version | type | length:4  | JSON (<= 64 KiB) |
//	+------+---------+------+-----------+-----------------+
const (
	helloMagic      = "cmgT"
	helloVersion    = 1
	frameHello      = 1
	frameAck        = 2
	helloHeaderLen  = 10
	MaxHelloPayload = 64 << 10
)

// Limits on what a hello may carry, so one connector cannot make the gateway hold
// unbounded state.
const (
	maxRoutes       = 256
	maxNameLen      = 64
	maxCapabilities = 32
)

// Errors of the hello exchange.
var (
	ErrBadMagic     = errors.New("tunnel: not a cmg tunnel hello (bad magic)")
	ErrBadVersion   = errors.New("tunnel: unsupported hello version")
	ErrHelloTooLong = errors.New("tunnel: hello longer than 64 KiB")
	ErrFrameType    = errors.New("tunnel: unexpected frame type")
)

// RoleKind is the kind of an on-prem role. It is the `role` label of the metrics.
type RoleKind string

// The role kinds of DESIGN section 7.
const (
	ManagementPoint     RoleKind = "management_point"
	SoftwareUpdatePoint RoleKind = "software_update_point"
	DistributionPoint   RoleKind = "distribution_point"
)

// RoleKinds lists every role kind.
var RoleKinds = []RoleKind{ManagementPoint, SoftwareUpdatePoint, DistributionPoint}

// Valid reports whether k is a known role kind.
func (k RoleKind) Valid() bool {
	for _, x := range RoleKinds {
		if x == k {
			return true
		}
	}
	return false
}

// The accepted-auth values of a Route: which public prefixes it is reachable by.
const (
	AuthMutual = "mutual_auth" // /CCM_Proxy_MutualAuth/<RoleID>/
	AuthServer = "server_auth" // /CCM_Proxy_ServerAuth/<RoleID>/
)

// Route is one role a connector publishes. Its internal URL stays on the connector.
type Route struct {
	RoleID string   `json:"role_id"`
	Kind   RoleKind `json:"kind"`
	Auth   []string `json:"auth"`
}

// Accepts reports whether the route is reachable with the given auth value.
func (r Route) Accepts(auth string) bool {
	for _, a := range r.Auth {
		if a == auth {
			return true
		}
	}
	return false
}

// RefusedRoute is a route the gateway did not accept, and why.
type RefusedRoute struct {
	Route
	Reason string `json:"reason"`
}

// Hello is what a connector says first after TLS.
type Hello struct {
	Name         string   `json:"name"`
	Site         string   `json:"site"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities,omitempty"`
	Routes       []Route  `json:"routes"`
}

// Ack is the gateway's answer to a hello.
type Ack struct {
	Instance  int            `json:"instance"`
	Instances int            `json:"instances"`
	Accepted  []Route        `json:"accepted"`
	Refused   []RefusedRoute `json:"refused,omitempty"`
	// Error is set when the gateway refuses the whole connector; it then closes.
	Error string `json:"error,omitempty"`
}

// Validate checks a decoded hello's shape (not whether the gateway allows it).
func (h *Hello) Validate() error {
	var errs []string
	if !ValidName(h.Name) {
		errs = append(errs, fmt.Sprintf("name %q is not 1-64 letters, digits, '-' or '.'", h.Name))
	}
	if !ValidName(h.Site) {
		errs = append(errs, fmt.Sprintf("site %q is not 1-64 letters, digits, '-' or '.'", h.Site))
	}
	if len(h.Version) > maxNameLen {
		errs = append(errs, "version too long")
	}
	if len(h.Capabilities) > maxCapabilities {
		errs = append(errs, "too many capabilities")
	}
	if len(h.Routes) > maxRoutes {
		errs = append(errs, fmt.Sprintf("%d routes, at most %d", len(h.Routes), maxRoutes))
	}
	for i, r := range h.Routes {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Sprintf("routes[%d]: %v", i, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("tunnel: bad hello: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Validate checks one route's shape.
func (r Route) Validate() error {
	if !ValidRoleID(r.RoleID) {
		return fmt.Errorf("role_id %q is not 1-20 digits", r.RoleID)
	}
	if !r.Kind.Valid() {
		return fmt.Errorf("kind %q is not a role kind", r.Kind)
	}
	if len(r.Auth) == 0 || len(r.Auth) > 2 {
		return errors.New("auth must list mutual_auth and/or server_auth")
	}
	for _, a := range r.Auth {
		if a != AuthMutual && a != AuthServer {
			return fmt.Errorf("auth %q is not mutual_auth or server_auth", a)
		}
	}
	return nil
}

// ValidRoleID reports whether s is a RoleID: the decimal form of a 64-bit number.
func ValidRoleID(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidName reports whether s is a valid site or connector name: 1 to 64
// letters, digits, '-' or '.'.
func ValidName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// WriteHello writes a hello frame.
func WriteHello(w io.Writer, h *Hello) error { return writeFrame(w, frameHello, h) }

// WriteAck writes an ack frame.
func WriteAck(w io.Writer, a *Ack) error { return writeFrame(w, frameAck, a) }

// ReadHello reads and validates a hello frame.
func ReadHello(r io.Reader) (*Hello, error) {
	var h Hello
	if err := readFrame(r, frameHello, &h); err != nil {
		return nil, err
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// ReadAck reads an ack frame.
func ReadAck(r io.Reader) (*Ack, error) {
	var a Ack
	if err := readFrame(r, frameAck, &a); err != nil {
		return nil, err
	}
	if len(a.Accepted)+len(a.Refused) > 2*maxRoutes {
		return nil, errors.New("tunnel: ack lists too many routes")
	}
	return &a, nil
}

func writeFrame(w io.Writer, typ byte, v any) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(payload) > MaxHelloPayload {
		return ErrHelloTooLong
	}
	buf := make([]byte, helloHeaderLen+len(payload))
	copy(buf, helloMagic)
	buf[4] = helloVersion
	buf[5] = typ
	binary.BigEndian.PutUint32(buf[6:10], uint32(len(payload)))
	copy(buf[helloHeaderLen:], payload)
	_, err = w.Write(buf)
	return err
}

func readFrame(r io.Reader, typ byte, v any) error {
	var hdr [helloHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("tunnel: read hello: %w", err)
	}
	if string(hdr[:4]) != helloMagic {
		return ErrBadMagic
	}
	if hdr[4] != helloVersion {
		return fmt.Errorf("%w %d", ErrBadVersion, hdr[4])
	}
	if hdr[5] != typ {
		return fmt.Errorf("%w %d", ErrFrameType, hdr[5])
	}
	n := binary.BigEndian.Uint32(hdr[6:10])
	if n > MaxHelloPayload {
		return ErrHelloTooLong
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return fmt.Errorf("tunnel: read hello: %w", err)
	}
	// Unknown fields are allowed: a newer connector may say more than this
	// gateway understands; what must be understood is negotiated by version.
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("tunnel: decode hello: %w", err)
	}
	if dec.More() {
		return errors.New("tunnel: trailing data after hello JSON")
	}
	return nil
}
