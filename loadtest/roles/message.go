package roles

import (
	"bytes"
	"compress/zlib"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
)

// The CCM message envelope of client-traffic.md section 1: CCM_POST (or POST) to
// /ccm_system*/request with a multipart/mixed body of two parts, a UTF-16 message
// header (<Msg>) and the payload, the UTF-16LE XML body, NUL-terminated, followed by
// CRLF and zlib-compressed when the header carries the zlib-compress hook. Replies
// have the same shape.

// MessageBoundary is the multipart boundary the CM client (and every tool that talks
// to an MP) uses.
const MessageBoundary = "aAbBcCdDv1234567890VxXyYzZ"

// MessageHeader is the <Msg> header of a CCM message.
type MessageHeader struct {
	ReplyCompression string // "zlib" when the sender accepts a compressed reply
	SchemaVersion    string // "1.1"
	BodyLength       int    // <Body Length=>: UTF-16 bytes of the body, NUL included, CRLF not
	CorrelationID    string // the ID of the request a reply answers; zero GUID otherwise
	ClientAuth       []HookProperty
	Compressed       bool // Hook3 zlib-compress: the payload part is zlib
	ID               string
	Priority         int
	ReplyMode        string // Sync or Async
	ReplyTo          string
	SentTime         string
	SourceID         string // GUID:<SMSID>, absent before registration
	SourceHost       string
	TargetAddress    string // mp:<Endpoint>
	TargetEndpoint   string
	TargetHost       string
	Timeout          int
}

// HookProperty is a <Property Name=..>value</Property> of the clientauth hook.
type HookProperty struct {
	Name  string `xml:"Name,attr"`
	Value string `xml:",chardata"`
}

// Message is a decoded CCM message.
type Message struct {
	Header MessageHeader
	// Body is the XML body as text (it is UTF-16LE on the wire), without the NUL.
	Body string
}

// ZeroGUID is the CorrelationID of a message that answers nothing.
const ZeroGUID = "{00000000-0000-0000-0000-000000000000}"

// EncodeMessage encodes m as the CM client does. BodyLength is computed. It returns
// the Content-Type header value and the HTTP body.
func EncodeMessage(m Message) (contentType string, body []byte) {
	payload := appendUTF16(nil, m.Body)
	payload = append(payload, 0, 0) // the NUL terminator
	m.Header.BodyLength = len(payload)
	payload = append(payload, '\r', '\n')
	if m.Header.Compressed {
		payload = zlibWith(&zlibDefault, payload)
	}
	var b bytes.Buffer
	b.Grow(len(payload) + 2048)
	b.WriteString("--" + MessageBoundary + "\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n")
	b.Write([]byte{0xFF, 0xFE})
	b.Write(appendUTF16(nil, m.Header.xml()))
	b.WriteString("\r\n--" + MessageBoundary + "\r\ncontent-type: application/octet-stream\r\n\r\n")
	b.Write(payload)
	b.WriteString("\r\n--" + MessageBoundary + "--")
	return `multipart/mixed; boundary="` + MessageBoundary + `"`, b.Bytes()
}

// xml renders the header the way the CM client writes it: fixed element order,
// self-closing empty elements, no XML declaration.
func (h MessageHeader) xml() string {
	var b strings.Builder
	b.WriteString("<Msg")
	if h.ReplyCompression != "" {
		b.WriteString(` ReplyCompression="` + escAttr(h.ReplyCompression) + `"`)
	}
	b.WriteString(` SchemaVersion="` + escAttr(def(h.SchemaVersion, "1.1")) + `">`)
	b.WriteString(`<Body Type="ByteRange" Length="` + strconv.Itoa(h.BodyLength) + `" Offset="0" />`)
	b.WriteString("<CorrelationID>" + escText(def(h.CorrelationID, ZeroGUID)) + "</CorrelationID>")
	if len(h.ClientAuth) > 0 || h.Compressed {
		b.WriteString("<Hooks>")
		if len(h.ClientAuth) > 0 {
			b.WriteString(`<Hook2 Name="clientauth">`)
			for _, p := range h.ClientAuth {
				b.WriteString(`<Property Name="` + escAttr(p.Name) + `">` + escText(p.Value) + "</Property>")
			}
			b.WriteString("</Hook2>")
		}
		if h.Compressed {
			b.WriteString(`<Hook3 Name="zlib-compress" />`)
		}
		b.WriteString("</Hooks>")
	}
	b.WriteString("<ID>" + escText(h.ID) + "</ID>")
	b.WriteString(`<Payload Type="inline" />`)
	b.WriteString("<Priority>" + strconv.Itoa(h.Priority) + "</Priority>")
	b.WriteString("<Protocol>http</Protocol>")
	b.WriteString("<ReplyMode>" + escText(def(h.ReplyMode, "Sync")) + "</ReplyMode>")
	b.WriteString("<ReplyTo>" + escText(h.ReplyTo) + "</ReplyTo>")
	b.WriteString("<SentTime>" + escText(h.SentTime) + "</SentTime>")
	if h.SourceID != "" {
		b.WriteString("<SourceID>" + escText(h.SourceID) + "</SourceID>")
	}
	b.WriteString("<SourceHost>" + escText(h.SourceHost) + "</SourceHost>")
	b.WriteString("<TargetAddress>" + escText(h.TargetAddress) + "</TargetAddress>")
	b.WriteString("<TargetEndpoint>" + escText(h.TargetEndpoint) + "</TargetEndpoint>")
	b.WriteString("<TargetHost>" + escText(h.TargetHost) + "</TargetHost>")
	b.WriteString("<Timeout>" + strconv.Itoa(def(h.Timeout, 60000)) + "</Timeout>")
	b.WriteString("</Msg>")
	return b.String()
}

func def[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func escText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func escAttr(s string) string { return escText(s) }

// msgXML is the parsed form of <Msg>; encoding/xml is tolerant of order and spacing.
type msgXML struct {
	XMLName          xml.Name `xml:"Msg"`
	ReplyCompression string   `xml:"ReplyCompression,attr"`
	SchemaVersion    string   `xml:"SchemaVersion,attr"`
	Body             struct {
		Length string `xml:"Length,attr"`
	} `xml:"Body"`
	CorrelationID string `xml:"CorrelationID"`
	Hooks         struct {
		Hook2 struct {
			Properties []HookProperty `xml:"Property"`
		} `xml:"Hook2"`
		Hook3 *struct {
			Name string `xml:"Name,attr"`
		} `xml:"Hook3"`
	} `xml:"Hooks"`
	ID             string `xml:"ID"`
	Priority       string `xml:"Priority"`
	ReplyMode      string `xml:"ReplyMode"`
	ReplyTo        string `xml:"ReplyTo"`
	SentTime       string `xml:"SentTime"`
	SourceID       string `xml:"SourceID"`
	SourceHost     string `xml:"SourceHost"`
	TargetAddress  string `xml:"TargetAddress"`
	TargetEndpoint string `xml:"TargetEndpoint"`
	TargetHost     string `xml:"TargetHost"`
	Timeout        string `xml:"Timeout"`
}

// Errors of ParseMessage, for errors.Is.
var (
	ErrNotMessage      = errors.New("roles: not a CCM message")
	ErrMessageTooLarge = errors.New("roles: CCM message too large")
)

// ParseMessage decodes a CCM message from its Content-Type and HTTP body. limit bounds
// the decompressed payload (a zlib bomb gets ErrMessageTooLarge).
func ParseMessage(contentType string, body []byte, limit int64) (*Message, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.EqualFold(mt, "multipart/mixed") || params["boundary"] == "" {
		return nil, fmt.Errorf("%w: content type %q", ErrNotMessage, contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	hdrPart, err := nextPart(mr)
	if err != nil {
		return nil, fmt.Errorf("%w: header part: %w", ErrNotMessage, err)
	}
	m := &Message{}
	if err := m.Header.parse(hdrPart); err != nil {
		return nil, err
	}
	payload, err := nextPart(mr)
	if err != nil {
		return nil, fmt.Errorf("%w: payload part: %w", ErrNotMessage, err)
	}
	if m.Header.Compressed {
		if payload, err = inflate(payload, limit); err != nil {
			return nil, err
		}
	} else if int64(len(payload)) > limit {
		return nil, ErrMessageTooLarge
	}
	if n := m.Header.BodyLength; n > 0 && n <= len(payload) {
		payload = payload[:n]
	} else {
		payload = bytes.TrimSuffix(payload, []byte("\r\n"))
	}
	if len(payload)%2 != 0 {
		payload = payload[:len(payload)-1]
	}
	text, _ := decodeUTF16(payload)
	m.Body = strings.TrimRight(text, "\x00")
	return m, nil
}

func nextPart(mr *multipart.Reader) ([]byte, error) {
	p, err := mr.NextRawPart()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(p)
}

func (h *MessageHeader) parse(raw []byte) error {
	text, err := headerText(raw)
	if err != nil {
		return err
	}
	var x msgXML
	if err := xml.Unmarshal([]byte(text), &x); err != nil {
		return fmt.Errorf("%w: header: %w", ErrNotMessage, err)
	}
	*h = MessageHeader{
		ReplyCompression: x.ReplyCompression,
		SchemaVersion:    x.SchemaVersion,
		CorrelationID:    x.CorrelationID,
		ClientAuth:       x.Hooks.Hook2.Properties,
		Compressed:       x.Hooks.Hook3 != nil && strings.EqualFold(x.Hooks.Hook3.Name, "zlib-compress"),
		ID:               x.ID,
		ReplyMode:        x.ReplyMode,
		ReplyTo:          x.ReplyTo,
		SentTime:         x.SentTime,
		SourceID:         x.SourceID,
		SourceHost:       x.SourceHost,
		TargetAddress:    x.TargetAddress,
		TargetEndpoint:   x.TargetEndpoint,
		TargetHost:       x.TargetHost,
	}
	h.BodyLength, _ = strconv.Atoi(strings.TrimSpace(x.Body.Length))
	h.Priority, _ = strconv.Atoi(strings.TrimSpace(x.Priority))
	h.Timeout, _ = strconv.Atoi(strings.TrimSpace(x.Timeout))
	if h.TargetEndpoint == "" {
		// Some senders give only the address ("mp:MP_PolicyManager").
		_, ep, _ := strings.Cut(h.TargetAddress, ":")
		h.TargetEndpoint = ep
	}
	return nil
}

// headerText decodes the header part: UTF-16 with a byte-order mark as the client
// sends it, or plain UTF-8 as some tools do.
func headerText(raw []byte) (string, error) {
	raw = bytes.TrimRight(raw, "\r\n")
	switch {
	case len(raw) >= 2 && raw[0] == 0xFF && raw[1] == 0xFE:
		if len(raw)%2 != 0 {
			raw = raw[:len(raw)-1]
		}
		return decodeUTF16(raw)
	case len(raw) >= 2 && raw[0] == '<' && raw[1] == 0:
		if len(raw)%2 != 0 {
			raw = raw[:len(raw)-1]
		}
		return decodeUTF16(raw)
	case len(raw) > 0 && raw[0] == '<':
		return string(raw), nil
	}
	return "", fmt.Errorf("%w: header is neither UTF-16 nor XML", ErrNotMessage)
}

func inflate(b []byte, limit int64) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrNotMessage, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrNotMessage, err)
	}
	if int64(len(out)) > limit {
		return nil, ErrMessageTooLarge
	}
	return out, nil
}
