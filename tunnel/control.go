package tunnel

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// MaxControlMessage bounds one control message (a broadcast notification is the
// largest thing it carries).
const MaxControlMessage = 1 << 20

// Control message types.
const (
	MsgPing      = "ping"
	MsgPong      = "pong"
	MsgRoutes    = "routes" // connector → gateway: the full set of routes it publishes now
	MsgHealth    = "health" // connector → gateway: role health
	MsgDrain     = "drain"  // either way: the sender is draining
	MsgNotify    = "notify" // connector → gateway: deliver a notification
	MsgReport    = "report" // gateway → connector: delivery report
	MsgRoutesAck = "routes_ack"
	// MsgProbeResult: gateway → analyzer, the outcome of one probe request
	// (Payload is a ProbeResult).
	MsgProbeResult = "probe_result"
)

// RoleHealth is the health of one role as a connector sees it.
type RoleHealth struct {
	RoleID  string `json:"role_id"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// Message is one control stream message. Fields beyond Type are set by type.
type Message struct {
	Type string `json:"type"`
	// Seq and Time (Unix nanoseconds of the sender) for ping and pong.
	Seq  uint64 `json:"seq,omitempty"`
	Time int64  `json:"time,omitempty"`
	// Routes for routes; Accepted/Refused for routes_ack.
	Routes  []Route         `json:"routes,omitempty"`
	Refused []RefusedRoute  `json:"refused,omitempty"`
	Health  []RoleHealth    `json:"health,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Validate checks a decoded control message's shape.
func (m *Message) Validate() error {
	switch m.Type {
	case MsgPing, MsgPong, MsgDrain, MsgNotify, MsgReport, MsgProbeResult:
	case MsgRoutes, MsgRoutesAck:
		if len(m.Routes)+len(m.Refused) > 2*maxRoutes {
			return errors.New("tunnel: too many routes in control message")
		}
		for i, r := range m.Routes {
			if err := r.Validate(); err != nil {
				return fmt.Errorf("tunnel: routes[%d]: %w", i, err)
			}
		}
	case MsgHealth:
		if len(m.Health) > maxRoutes {
			return errors.New("tunnel: too many health entries")
		}
	default:
		return fmt.Errorf("tunnel: unknown control message type %q", m.Type)
	}
	return nil
}

// ReadMessage reads one length-prefixed control message.
func ReadMessage(r *bufio.Reader) (*Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxControlMessage {
		return nil, fmt.Errorf("tunnel: control message of %d bytes exceeds %d", n, MaxControlMessage)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	var m Message
	if err := json.Unmarshal(buf, &m); err != nil {
		return nil, fmt.Errorf("tunnel: decode control message: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// controlWriter serialises writers of one control stream.
type controlWriter struct {
	mu      sync.Mutex
	w       io.Writer
	timeout time.Duration
	setDL   func(time.Time) error
}

// write sends one message; a write that cannot finish within the timeout fails,
// which tears the session down (a stuck control stream is a dead tunnel).
func (c *controlWriter) write(m *Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(body) > MaxControlMessage {
		return fmt.Errorf("tunnel: control message of %d bytes exceeds %d", len(body), MaxControlMessage)
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.setDL != nil && c.timeout > 0 {
		_ = c.setDL(time.Now().Add(c.timeout))
		defer c.setDL(time.Time{})
	}
	_, err = c.w.Write(frame)
	return err
}
