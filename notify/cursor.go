package notify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A Cursor is where a device stands in its site's events, carried as the SSE
// event id (so browsers and EventSource-style clients send it back as
// Last-Event-ID). Each connector of a site numbers its own events, so the cursor
// holds the last sequence number seen from each connector, plus a base: the time
// (Unix nanoseconds) the device's first channel opened. A connector not in the
// cursor has sent the device nothing since then, and its sequence numbers are
// Unix nanoseconds of its own clock, so "after base" is what the device missed
// from it (gateway and connector clocks are assumed NTP-synchronised; the base
// only matters for a connector that has sent this device nothing yet).
//
// Text form: "<base>" then ";<connector>=<seq>" per connector, in order of
// connector name, e.g. "1764111600000000000;cp1=1764111612345678901".
type Cursor struct {
	Base  int64
	Marks []Mark
}

// Mark is the last sequence number a device got from one connector.
type Mark struct {
	Connector string
	Seq       uint64
}

// Cursor bounds.
const (
	// MaxMarks is the most connectors a cursor tracks (a site has few).
	MaxMarks = 16
	// MaxCursorLen bounds the text form.
	MaxCursorLen = 20 + MaxMarks*(2+64+20)
)

// After is the sequence number after which the device missed events of the
// connector.
func (c *Cursor) After(connector string) uint64 {
	for _, m := range c.Marks {
		if m.Connector == connector {
			return m.Seq
		}
	}
	if c.Base < 0 {
		return 0
	}
	return uint64(c.Base)
}

// Advance records that the device got event seq of connector. It reports false
// (and changes nothing) when the device already has an event of that connector
// at or after seq: a duplicate (a replayed event that also arrived live). The
// base plays no part here, so a live event is never refused for clock skew.
func (c *Cursor) Advance(connector string, seq uint64) bool {
	for i := range c.Marks {
		if c.Marks[i].Connector == connector {
			if seq <= c.Marks[i].Seq {
				return false
			}
			c.Marks[i].Seq = seq
			return true
		}
	}
	// Insert in name order; past MaxMarks the oldest-named entry would be lost,
	// so the cursor keeps the first MaxMarks names (a site has fewer connectors).
	if len(c.Marks) >= MaxMarks {
		return true
	}
	i := 0
	for i < len(c.Marks) && c.Marks[i].Connector < connector {
		i++
	}
	c.Marks = append(c.Marks, Mark{})
	copy(c.Marks[i+1:], c.Marks[i:])
	c.Marks[i] = Mark{Connector: connector, Seq: seq}
	return true
}

// AppendText appends the text form.
func (c *Cursor) AppendText(b []byte) []byte {
	b = strconv.AppendInt(b, c.Base, 10)
	for _, m := range c.Marks {
		b = append(b, ';')
		b = append(b, m.Connector...)
		b = append(b, '=')
		b = strconv.AppendUint(b, m.Seq, 10)
	}
	return b
}

// String is the text form.
func (c *Cursor) String() string { return string(c.AppendText(nil)) }

// ErrCursor is returned for a Last-Event-ID that is not a cursor.
var ErrCursor = errors.New("notify: not a notification cursor")

// ParseCursor parses the text form.
func ParseCursor(s string) (Cursor, error) {
	var c Cursor
	if s == "" || len(s) > MaxCursorLen {
		return c, ErrCursor
	}
	parts := strings.Split(s, ";")
	base, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || base < 0 || parts[0][0] == '+' {
		return c, fmt.Errorf("%w: bad base", ErrCursor)
	}
	c.Base = base
	if len(parts)-1 > MaxMarks {
		return Cursor{}, fmt.Errorf("%w: more than %d connectors", ErrCursor, MaxMarks)
	}
	for _, p := range parts[1:] {
		name, num, ok := strings.Cut(p, "=")
		if !ok || !validConnector(name) {
			return Cursor{}, fmt.Errorf("%w: bad connector mark", ErrCursor)
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil || num[0] == '+' {
			return Cursor{}, fmt.Errorf("%w: bad sequence number", ErrCursor)
		}
		if n := len(c.Marks); n > 0 && c.Marks[n-1].Connector >= name {
			return Cursor{}, fmt.Errorf("%w: connectors out of order", ErrCursor)
		}
		c.Marks = append(c.Marks, Mark{Connector: name, Seq: seq})
	}
	return c, nil
}

// validConnector is tunnel.ValidName (1 to 64 letters, digits, '-' or '.'),
// repeated here to keep this package free of the tunnel.
func validConnector(s string) bool {
	if s == "" || len(s) > 64 {
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
