package notifyclient

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"time"
)

// Event is one dispatched server-sent event.
type Event struct {
	// ID is the stream's last event id when the event was dispatched (what the
	// client sends back as Last-Event-ID).
	ID string
	// Type is the event type ("message" when the server named none).
	Type string
	// Data is the event's data: its data lines joined by "\n".
	Data []byte
}

// Parser limits.
var (
	ErrLineTooLong  = errors.New("notifyclient: an SSE line is too long")
	ErrEventTooLong = errors.New("notifyclient: an SSE event is too long")
)

// Parser decodes a server-sent-event stream as the WHATWG HTML standard
// describes it: lines end in CRLF, LF or CR; "event", "data", "id" and "retry"
// fields; comments; a blank line dispatches; an event without data dispatches
// nothing but still sets the last event id.
type Parser struct {
	r *bufio.Reader
	// MaxLine bounds one line, MaxEvent one event's data.
	MaxLine  int
	MaxEvent int
	// OnComment, when set, is called for each comment line (the gateway's
	// heartbeats), as it is read.
	OnComment func()

	line      []byte
	data      []byte
	event     string
	lastID    string
	retry     time.Duration
	comments  int64
	skipLF    bool
	firstLine bool
}

// NewParser reads events from r. lastID is the last event id carried over
// from an earlier stream.
func NewParser(r *bufio.Reader, lastID string) *Parser {
	return &Parser{r: r, MaxLine: 128 << 10, MaxEvent: 1 << 20, lastID: lastID, firstLine: true}
}

// LastEventID is the stream's last event id so far.
func (p *Parser) LastEventID() string { return p.lastID }

// Retry is the reconnection time the server asked for, or 0.
func (p *Parser) Retry() time.Duration { return p.retry }

// Comments counts the comment lines seen (the gateway's heartbeats).
func (p *Parser) Comments() int64 { return p.comments }

// Next returns the next dispatched event, or the read error that ended the
// stream (an event cut off by the end of the stream is discarded).
func (p *Parser) Next() (Event, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if p.firstLine {
			p.firstLine = false
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 {
			if ev, ok := p.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			p.comments++
			if p.OnComment != nil {
				p.OnComment()
			}
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			p.event = string(value)
		case "data":
			if len(p.data)+len(value)+1 > p.MaxEvent {
				return Event{}, ErrEventTooLong
			}
			p.data = append(p.data, value...)
			p.data = append(p.data, '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && isDigits(value) {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

func (p *Parser) dispatch() (Event, bool) {
	if len(p.data) == 0 {
		p.event = ""
		return Event{}, false
	}
	ev := Event{ID: p.lastID, Type: p.event, Data: bytes.Clone(p.data[:len(p.data)-1])}
	if ev.Type == "" {
		ev.Type = "message"
	}
	p.data, p.event = p.data[:0], ""
	return ev, true
}

// readLine returns the next line without its end (CRLF, LF or CR).
func (p *Parser) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		b, err := p.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if p.skipLF {
			p.skipLF = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return p.line, nil
		case '\r':
			p.skipLF = true
			return p.line, nil
		}
		if len(p.line) >= p.MaxLine {
			return nil, ErrLineTooLong
		}
		p.line = append(p.line, b)
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
