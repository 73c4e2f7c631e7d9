// Package notify is the shared part of the device notification channel (DESIGN
// section 9): the messages a connector and a gateway instance exchange about
// notifications (on the tunnel's control stream, and the replay request on a
// request stream), the event ids devices resume from (Last-Event-ID cursors),
// server-sent-event framing, and the connector's bounded, TTL-limited buffer of
// recent events per device.
//
// The flow: a site system asks a connector (POST /api/v1/notify on its admin
// listener); the connector numbers the event, keeps it in its Buffer and sends a
// Notice to every gateway instance on the control stream; each instance writes it
// to the channels of the targeted devices of the connector's site and answers
// with a Report. A device that reconnects with Last-Event-ID gets what it missed:
// the instance it reaches sends a ReplayRequest to every connector of the
// device's site and writes the events they still hold.
package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Limits of the wire messages. They bound what one control message can make a
// gateway instance do; the connector's configuration may be tighter.
const (
	// MaxTargets is the most devices one notification may name.
	MaxTargets = 10000
	// MaxDeviceLen bounds one device identity.
	MaxDeviceLen = 256
	// MaxData bounds an event's data (compact JSON).
	MaxData = 64 << 10
	// MaxEventName bounds the SSE event type.
	MaxEventName = 64
	// MaxReplayEvents bounds the events of one list in a replay answer.
	MaxReplayEvents = 4096
	// MaxReplayBatch is the most devices one replay request names.
	MaxReplayBatch = 100
)

// ReplayPath is the path of the replay request a gateway instance sends to a
// connector on a fresh request stream. Devices cannot reach it: the gateway
// forwards only role prefixes and answers /cmg/... itself.
const ReplayPath = "/cmg/v1/notifications/replay"

// Notice is the payload of a control "notify" message (connector to gateway):
// deliver one event to the named devices of the connector's site, or to all of
// them.
type Notice struct {
	// Seq is the event's number at the connector: increasing, never zero.
	Seq uint64 `json:"seq"`
	// All targets every device of the site; otherwise Devices lists them.
	All     bool     `json:"all,omitempty"`
	Devices []string `json:"devices,omitempty"`
	Event   string   `json:"event,omitempty"`
	// Data is compact JSON (one line).
	Data json.RawMessage `json:"data"`
}

// Validate checks a decoded notice's shape and bounds.
func (n *Notice) Validate() error {
	if n.Seq == 0 {
		return errors.New("notify: notice without seq")
	}
	if n.All == (len(n.Devices) > 0) {
		return errors.New("notify: a notice targets all devices or a list, exactly one")
	}
	if len(n.Devices) > MaxTargets {
		return fmt.Errorf("notify: %d devices exceed %d", len(n.Devices), MaxTargets)
	}
	for i, d := range n.Devices {
		if err := ValidDevice(d); err != nil {
			return fmt.Errorf("notify: devices[%d]: %w", i, err)
		}
	}
	if err := ValidEventName(n.Event); err != nil {
		return err
	}
	return ValidData(n.Data)
}

// Report is the payload of a control "report" message (gateway to connector):
// what one instance did with a notice.
type Report struct {
	Seq uint64 `json:"seq"`
	// Delivered counts events written to a device's channel; NotConnected the
	// targeted devices with no channel on this instance (list targets only);
	// Failed the channels that closed or fell behind before the write.
	Delivered    int `json:"delivered"`
	NotConnected int `json:"not_connected"`
	Failed       int `json:"failed"`
	// DeliveredIdx are the positions in the notice's device list that were
	// delivered (list targets only).
	DeliveredIdx []int `json:"delivered_idx,omitempty"`
	// Error says why the instance refused the notice.
	Error string `json:"error,omitempty"`
}

// ReplayRequest asks a connector for the events it holds for devices, each
// after its own sequence number: one device resuming, or every channel of an
// instance catching up with a connector that (re)joined it.
type ReplayRequest struct {
	Devices []DeviceAfter `json:"devices"`
}

// DeviceAfter is one device of a replay request.
type DeviceAfter struct {
	Device string `json:"device"`
	After  uint64 `json:"after"`
}

// Validate checks a replay request.
func (r *ReplayRequest) Validate() error {
	if len(r.Devices) == 0 || len(r.Devices) > MaxReplayBatch {
		return fmt.Errorf("notify: a replay names 1 to %d devices", MaxReplayBatch)
	}
	for i := range r.Devices {
		if err := ValidDevice(r.Devices[i].Device); err != nil {
			return fmt.Errorf("notify: devices[%d]: %w", i, err)
		}
	}
	return nil
}

// MinAfter is the smallest After of the request.
func (r *ReplayRequest) MinAfter() uint64 {
	m := uint64(0)
	for i, d := range r.Devices {
		if i == 0 || d.After < m {
			m = d.After
		}
	}
	return m
}

// ReplayResponse is the connector's answer: the events to all devices after the
// request's smallest After, once, and each device's own events after its After,
// in the request's order; every list in sequence order.
type ReplayResponse struct {
	Broadcasts []Event   `json:"broadcasts"`
	Devices    [][]Event `json:"devices"`
}

// Validate checks a replay answer against its request.
func (r *ReplayResponse) Validate(req *ReplayRequest) error {
	if len(r.Devices) != len(req.Devices) {
		return fmt.Errorf("notify: a replay answer for %d devices, not %d", len(r.Devices), len(req.Devices))
	}
	if err := validEvents(r.Broadcasts); err != nil {
		return err
	}
	for _, evs := range r.Devices {
		if err := validEvents(evs); err != nil {
			return err
		}
	}
	return nil
}

// For is what device i of the request missed: its own events and the events to
// all devices after its After, merged in sequence order.
func (r *ReplayResponse) For(req *ReplayRequest, i int) []Event {
	after := req.Devices[i].After
	own := r.Devices[i]
	var out []Event
	j := 0
	for j < len(r.Broadcasts) && r.Broadcasts[j].Seq <= after {
		j++
	}
	k := 0
	for k < len(own) || j < len(r.Broadcasts) {
		if j >= len(r.Broadcasts) || k < len(own) && own[k].Seq < r.Broadcasts[j].Seq {
			if own[k].Seq > after {
				out = append(out, own[k])
			}
			k++
			continue
		}
		out = append(out, r.Broadcasts[j])
		j++
	}
	return out
}

func validEvents(evs []Event) error {
	if len(evs) > MaxReplayEvents {
		return fmt.Errorf("notify: %d replayed events exceed %d", len(evs), MaxReplayEvents)
	}
	var last uint64
	for i := range evs {
		e := &evs[i]
		if e.Seq <= last {
			return fmt.Errorf("notify: replayed events out of order at %d", i)
		}
		last = e.Seq
		if err := ValidEventName(e.Event); err != nil {
			return err
		}
		if err := ValidData(e.Data); err != nil {
			return err
		}
	}
	return nil
}

// Event is one buffered event.
type Event struct {
	Seq   uint64          `json:"seq"`
	Event string          `json:"event,omitempty"`
	Data  json.RawMessage `json:"data"`
}

// ValidDevice checks a device identity: 1 to MaxDeviceLen bytes, no control
// characters.
func ValidDevice(d string) error {
	if d == "" || len(d) > MaxDeviceLen {
		return fmt.Errorf("notify: a device identity is 1 to %d bytes", MaxDeviceLen)
	}
	for i := 0; i < len(d); i++ {
		if d[i] < 0x20 || d[i] == 0x7f {
			return errors.New("notify: a device identity has no control characters")
		}
	}
	return nil
}

// ValidEventName checks an SSE event type: empty (the default "message") or 1 to
// MaxEventName letters, digits, '-', '_' and '.'.
func ValidEventName(s string) error {
	if len(s) > MaxEventName {
		return fmt.Errorf("notify: an event name is at most %d bytes", MaxEventName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("notify: event name %q: only letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

// ValidData checks event data: valid JSON of at most MaxData bytes on one line,
// so that it is one SSE data field.
func ValidData(d json.RawMessage) error {
	if len(d) == 0 {
		return errors.New("notify: event data is required")
	}
	if len(d) > MaxData {
		return fmt.Errorf("notify: event data of %d bytes exceeds %d", len(d), MaxData)
	}
	if bytes.ContainsAny(d, "\r\n") {
		return errors.New("notify: event data must be compact JSON (one line)")
	}
	if !json.Valid(d) {
		return errors.New("notify: event data is not valid JSON")
	}
	return nil
}

// CompactData returns v as compact JSON, checked with ValidData.
func CompactData(v json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return nil, fmt.Errorf("notify: event data is not valid JSON: %w", err)
	}
	out := json.RawMessage(b.Bytes())
	if err := ValidData(out); err != nil {
		return nil, err
	}
	return out, nil
}
