package tunnel

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Proxy is a web proxy the HTTPS transport goes through with HTTP CONNECT (the
// lowest rung of the fallback ladder).
type Proxy struct {
	// URL is the proxy, http://host:port. User information in it is used for
	// basic auth unless Username is set.
	URL *url.URL
	// Username and Password, when Username is set, are sent as basic auth.
	Username string
	Password string
}

// String is the proxy without its password, for logs and the status API.
func (p *Proxy) String() string {
	if p == nil || p.URL == nil {
		return ""
	}
	return p.URL.Redacted()
}

// credentials returns the basic-auth pair to send, if any.
func (p *Proxy) credentials() (user, pass string, ok bool) {
	if p.Username != "" {
		return p.Username, p.Password, true
	}
	if u := p.URL.User; u != nil {
		pw, _ := u.Password()
		return u.Username(), pw, true
	}
	return "", "", false
}

// ProxyFromEnvironment returns the proxy that HTTPS_PROXY (or https_proxy) names
// for the target host:port, honouring NO_PROXY, or nil when none applies. getenv
// nil means os.Getenv.
func ProxyFromEnvironment(target string, getenv func(string) string) (*Proxy, error) {
	env := func(upper string) string {
		if v := getenv(upper); v != "" {
			return v
		}
		return getenv(strings.ToLower(upper))
	}
	cfg := httpproxy.Config{HTTPSProxy: env("HTTPS_PROXY"), NoProxy: env("NO_PROXY")}
	if cfg.HTTPSProxy == "" {
		return nil, nil
	}
	u, err := cfg.ProxyFunc()(&url.URL{Scheme: "https", Host: target})
	if err != nil {
		return nil, fmt.Errorf("HTTPS_PROXY: %w", err)
	}
	if u == nil {
		return nil, nil
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("HTTPS_PROXY: scheme %q is not supported (use http://host:port)", u.Scheme)
	}
	return &Proxy{URL: u}, nil
}

// ProxyError is a proxy's refusal of a CONNECT. Status 407 (401 from some
// proxies, tinyproxy among them) means the credentials are missing or wrong.
type ProxyError struct {
	Proxy  string
	Status int
	Text   string
}

// Credentials reports whether the proxy refused the credentials.
func (e *ProxyError) Credentials() bool {
	return e.Status == http.StatusProxyAuthRequired || e.Status == http.StatusUnauthorized
}

func (e *ProxyError) Error() string {
	if e.Credentials() {
		return fmt.Sprintf("proxy %s refused the credentials (%d %s)", e.Proxy, e.Status, e.Text)
	}
	return fmt.Sprintf("proxy %s refused CONNECT (%d %s)", e.Proxy, e.Status, e.Text)
}

// maxConnectResponse bounds the proxy's answer to CONNECT.
const maxConnectResponse = 16 << 10

// dialConnect opens a TCP connection to the proxy and asks it for a tunnel to
// target. dial dials TCP.
func dialConnect(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), p *Proxy, target string) (net.Conn, error) {
	host := p.URL.Host
	if p.URL.Port() == "" {
		host = net.JoinHostPort(p.URL.Hostname(), "80")
	}
	raw, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", p.String(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	conn, err := connectOn(raw, p, target)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(noDeadline)
	return conn, nil
}

// connectOn sends CONNECT on raw and reads the answer. The proxy sends nothing
// after its answer until the tunnelled TLS starts, so bytes read past the header
// are kept for the caller rather than lost.
func connectOn(raw net.Conn, p *Proxy, target string) (net.Conn, error) {
	var b strings.Builder
	b.WriteString("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n")
	if user, pass, ok := p.credentials(); ok {
		b.WriteString("Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n")
	}
	b.WriteString("User-Agent: cmg-connector\r\n\r\n")
	if _, err := io.WriteString(raw, b.String()); err != nil {
		return nil, fmt.Errorf("proxy %s: %w", p.String(), err)
	}
	br := bufio.NewReader(io.LimitReader(raw, maxConnectResponse))
	status, text, err := ReadConnectResponse(br)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", p.String(), err)
	}
	if status != http.StatusOK {
		return nil, &ProxyError{Proxy: p.String(), Status: status, Text: text}
	}
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		return &prefixConn{Conn: raw, prefix: append([]byte(nil), early...)}, nil
	}
	return raw, nil
}

// ReadConnectResponse reads a proxy's answer to CONNECT: the status line and the
// header, which it skips. Any 2xx is success (returned as 200).
func ReadConnectResponse(br *bufio.Reader) (status int, text string, err error) {
	line, err := readLine(br)
	if err != nil {
		return 0, "", fmt.Errorf("reading the CONNECT answer: %w", err)
	}
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, "", fmt.Errorf("not an HTTP answer to CONNECT: %q", truncate(line, 64))
	}
	code, text, _ := strings.Cut(rest, " ")
	if len(code) != 3 || code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return 0, "", fmt.Errorf("bad status in the CONNECT answer: %q", truncate(line, 64))
	}
	status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	for {
		l, err := readLine(br)
		if err != nil {
			return 0, "", fmt.Errorf("reading the CONNECT answer: %w", err)
		}
		if l == "" {
			break
		}
	}
	if status/100 == 2 {
		status = http.StatusOK
	}
	return status, text, nil
}

// readLine reads one CRLF- or LF-terminated line of at most 4 KiB.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > 4096 {
			return "", errors.New("header line longer than 4 KiB")
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// prefixConn is a connection whose first reads return bytes already read from it.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// DialConnect opens a tunnel to target (host:port) through proxy p with HTTP
// CONNECT; dial dials TCP (nil means a net.Dialer). The connection analyzer
// checks the proxy with it.
func DialConnect(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), p *Proxy, target string) (net.Conn, error) {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return dialConnect(ctx, dial, p, target)
}
