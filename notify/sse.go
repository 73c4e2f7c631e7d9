package notify

// Server-sent-event framing (the WHATWG HTML "server-sent events" format) as the
// gateway writes it.

// Heartbeat is an SSE comment: it keeps idle proxies and load balancers from
// cutting the channel and dispatches nothing.
const Heartbeat = ":\n\n"

// AppendBody appends the fields of an event after its id line: the event type
// when set, the data, and the blank line that dispatches it. data must be one
// line (ValidData).
func AppendBody(b []byte, event string, data []byte) []byte {
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, event...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// AppendID appends the id line of an event: the device's cursor after it.
func AppendID(b []byte, c *Cursor) []byte {
	b = append(b, "id: "...)
	b = c.AppendText(b)
	return append(b, '\n')
}

// AppendCursorOnly appends an id line and a blank line: no event is dispatched,
// but the client's last event id becomes the cursor (the channel's first bytes,
// so that a device that got no event yet still resumes from its first
// connection).
func AppendCursorOnly(b []byte, c *Cursor) []byte {
	return append(AppendID(b, c), '\n')
}
