package gateway

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cmg-gateway/cmg/tracing"
)

// The gateway's own headers to the connector. A device's headers of these names
// (any header starting with "Cmg-") are stripped: only the gateway says who the
// device is.
const (
	HeaderRequestID     = "Cmg-Request-Id"
	HeaderClientAddress = "Cmg-Client-Address"
	HeaderAuthMethod    = "Cmg-Auth-Method"
	HeaderDeviceID      = "Cmg-Device-Id"
	HeaderClientSubject = "Cmg-Client-Subject"
	HeaderClientIssuer  = "Cmg-Client-Issuer"
	HeaderTenant        = "Cmg-Tenant"
	HeaderInstance      = "Cmg-Gateway-Instance"
)

// dropRequestHeader reports whether a device's header must not reach the
// connector: hop-by-hop headers, framing the gateway rewrites, and identity or
// forwarding headers a device could spoof.
func dropRequestHeader(k string) bool {
	if strings.IndexByte(k, '_') >= 0 {
		// Cmg_Device_Id reads as Cmg-Device-Id to a CGI-style role.
		return underscoreSpoof(k)
	}
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "Content-Length", "Host",
		"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", tracing.HeaderTraceparent, tracing.HeaderTracestate:
		return true
	}
	return strings.HasPrefix(k, "Cmg-") || strings.HasPrefix(k, "X-Forwarded-")
}

// writeRequestHeader writes the request line and header for the connector and
// returns the number of bytes written.
func writeRequestHeader(bw *bufio.Writer, x *exchange, instance int) int {
	r := x.r
	n := 0
	ws := func(s string) { m, _ := bw.WriteString(s); n += m }
	hdr := func(k, v string) {
		ws(k)
		ws(": ")
		ws(v)
		ws("\r\n")
	}
	ws(r.Method)
	ws(" ")
	ws(requestURI(r))
	ws(" HTTP/1.1\r\n")
	hdr("Host", r.Host)
	connHeaders := r.Header["Connection"]
	for k, vs := range r.Header {
		if dropRequestHeader(k) || listedIn(connHeaders, k) {
			continue
		}
		for _, v := range vs {
			hdr(k, v)
		}
	}
	switch {
	case r.ContentLength > 0:
		hdr("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	case r.ContentLength < 0:
		hdr("Transfer-Encoding", "chunked")
	}
	ip := clientIP(r.RemoteAddr)
	hdr("X-Forwarded-For", ip)
	hdr("X-Forwarded-Proto", "https")
	hdr("X-Forwarded-Host", r.Host)
	hdr(HeaderRequestID, x.id)
	hdr(HeaderClientAddress, ip)
	hdr(HeaderInstance, strconv.Itoa(instance))
	if id := x.ident; id != nil {
		hdr(HeaderAuthMethod, string(id.Method))
		hdr(HeaderDeviceID, headerSafe(id.Device))
		if id.Subject != "" {
			hdr(HeaderClientSubject, headerSafe(id.Subject))
		}
		if id.Issuer != "" {
			hdr(HeaderClientIssuer, headerSafe(id.Issuer))
		}
		if id.Tenant != "" {
			hdr(HeaderTenant, headerSafe(id.Tenant))
		}
	}
	n += writeTraceparent(bw, x)
	ws("Connection: close\r\n\r\n")
	return n
}

// requestURI is the request target as the device sent it, in origin form.
func requestURI(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// copyResponseHeader copies the connector's response header for the device,
// without hop-by-hop headers.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vs := range src {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		if listedIn(conn, k) {
			continue
		}
		dst[k] = vs
	}
}

func listedIn(connHeaders []string, k string) bool {
	for _, v := range connHeaders {
		for _, f := range strings.Split(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

// clientIP is the device's address without the port.
func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// headerSafe keeps a value free of bytes that would break the header.
func headerSafe(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") {
		return strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ").Replace(s)
	}
	return s
}
