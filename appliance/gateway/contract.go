package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// deviceConn is a device connection as net/http serves it. net/http answers a
// few requests on its own, before any handler runs, by writing a canned
// response straight to the connection: a malformed request (400), a request
// line or header over max_header_bytes (431), an unknown transfer coding
// (501), an unsupported HTTP version (505), an Expect other than
// 100-continue (417). Write recognizes those and sends the error contract of
// DESIGN section 8 instead, and the gateway counts and logs them like any
// error it makes.
type deviceConn struct {
	*tls.Conn
	g *Gateway
}

func (c *deviceConn) Write(b []byte) (int, error) {
	if e, ok := cannedError(b, int(c.g.cfg.Client.MaxHeaderBytes)); ok {
		id := c.g.requestID()
		if _, err := c.Conn.Write(contractResponse(nil, e, id)); err != nil {
			return 0, err
		}
		c.g.recordListenerError(c, e, id, statusOfCanned(b))
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// Unwrap lets countAsTunnel and the wire counters find the connection below.
func (c *deviceConn) Unwrap() net.Conn { return c.Conn.NetConn() }

// cannedHeaders is what follows the status line of every response net/http
// writes on its own when it cannot read a request.
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// cannedError recognizes a response net/http made on its own and returns the
// contract error to send instead. A response the handler wrote always carries
// Date and the gateway's CMG-Request-ID, so it never matches.
func cannedError(b []byte, maxHeader int) (*httperror.Error, bool) {
	if len(b) < 13 || string(b[:9]) != "HTTP/1.1 " {
		return nil, false
	}
	eol := bytes.Index(b, crlf)
	if eol < 0 {
		return nil, false
	}
	switch {
	case bytes.HasPrefix(b[eol:], cannedHeadersB):
	case bytes.HasPrefix(b[9:], status417) && !bytes.Contains(b, handlerMark):
		return httperror.New(httperror.BadRequest, "the Expect header may only ask for 100-continue"), true
	default:
		return nil, false
	}
	code, text, _ := strings.Cut(string(b[9:eol]), " ")
	// "400 Bad Request: missing required Host header" → the part after ": ",
	// without any quoted echo of the request.
	_, detail, _ := strings.Cut(text, ": ")
	if i := strings.IndexByte(detail, '"'); i >= 0 {
		detail = strings.TrimSpace(detail[:i])
	}
	switch code {
	case "431":
		return httperror.New(httperror.RequestTooLarge, "the request line or header is larger than "+strconv.Itoa(maxHeader)+" bytes"), true
	case "501":
		return httperror.New(httperror.BadRequest, "unsupported or ambiguous Transfer-Encoding"), true
	case "505":
		return httperror.New(httperror.BadRequest, "unsupported HTTP version"), true
	}
	if detail == "" {
		detail = "malformed or ambiguous request"
	}
	return httperror.New(httperror.BadRequest, detail), true
}

var (
	crlf           = []byte("\r\n")
	cannedHeadersB = []byte(cannedHeaders)
	status417      = []byte("417 ")
	handlerMark    = []byte("\r\nCmg-Request-Id:")
)

// statusOfCanned is the status net/http would have sent (for the log).
func statusOfCanned(b []byte) int {
	n, _ := strconv.Atoi(string(b[9:12]))
	return n
}

// contractResponse appends a complete HTTP/1.1 error response of the contract,
// closing the connection.
func contractResponse(b []byte, e *httperror.Error, id string) []byte {
	body := httperror.AppendJSON(nil, e.Reason, e.Detail, id)
	st := e.Reason.Status()
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(st), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(st)...)
	b = append(b, "\r\nCMG-Error: "...)
	b = append(b, e.Reason...)
	b = append(b, "\r\nCMG-Request-ID: "...)
	b = append(b, id...)
	b = append(b, "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	if e.RetryAfter > 0 {
		b = append(b, "\r\nRetry-After: "...)
		b = strconv.AppendInt(b, int64((e.RetryAfter+time.Second-1)/time.Second), 10)
	}
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// recordListenerError counts and logs an error answered outside the handler.
func (g *Gateway) recordListenerError(c net.Conn, e *httperror.Error, id string, nethttpStatus int) {
	code := e.Reason.Status()
	g.m.requests.WithLabelValues(roleKindLabels[noRole], "other", codeLabel(code)).Inc()
	if m := g.m.errors[e.Reason]; m != nil {
		m.Inc()
	}
	attrs := []slog.Attr{
		slog.String("request_id", id),
		slog.Int("status", code),
		slog.String("role", roleKindLabels[noRole]),
		slog.String("remote", c.RemoteAddr().String()),
		slog.String("reason", string(e.Reason)),
		slog.String("error", e.Detail),
	}
	if nethttpStatus != 0 {
		attrs = append(attrs, slog.Int("unparsed_status", nethttpStatus))
	}
	g.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}
