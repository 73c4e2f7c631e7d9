package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The HTTPS transport (DESIGN section 4): TLS with the ALPN protocol ALPN, then
// `GET UpgradePath` with `Upgrade: UpgradeProtocol`, answered by 101; the raw
// connection then carries the hello and the yamux session as on TCP-TLS. On the
// gateway's shared 443 listener the ALPN protocol selects the connector-CA
// mutual-TLS configuration.
const (
	ALPN            = "cmg-tunnel/1"
	UpgradePath     = "/cmg/v1/tunnel"
	UpgradeProtocol = "cmg-tunnel/1"
	// HeaderTransport tells the gateway which rung the connector came by
	// (https or https_proxy): the gateway cannot see a proxy itself.
	HeaderTransport = "Cmg-Tunnel-Transport"
)

var noDeadline time.Time

// maxUpgradeHeader bounds the upgrade request and response headers.
const maxUpgradeHeader = 8 << 10

// HTTPS is the fallback transport: TLS to the instance's HTTPS port, then an
// HTTP/1.1 Upgrade; with Proxy set it goes through a web proxy's CONNECT.
type HTTPS struct {
	Host string
	// Port is instance i's HTTPS tunnel port.
	Port func(instance int) int
	TLS  *tls.Config
	// Proxy, when set, returns the proxy for a target host:port; this transport
	// is then the https_proxy rung. An error or a nil proxy fails the dial.
	Proxy func(target string) (*Proxy, error)
	// Dialer dials TCP; nil means a net.Dialer.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Name is the transport label: https, or https_proxy when it goes by a proxy.
func (t *HTTPS) Name() string {
	if t.Proxy != nil {
		return TransportProxy
	}
	return TransportHTTPS
}

// ErrNoProxy is the https_proxy rung's error when no proxy applies to the target.
var ErrNoProxy = errors.New("no proxy is configured for this address (proxy.url or HTTPS_PROXY)")

// Dial connects to instance i, completes TLS and the upgrade.
func (t *HTTPS) Dial(ctx context.Context, i int) (*tls.Conn, error) {
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port(i)))
	dial := t.Dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	var raw net.Conn
	var err error
	if t.Proxy != nil {
		p, perr := t.Proxy(addr)
		if perr != nil {
			return nil, perr
		}
		if p == nil {
			return nil, ErrNoProxy
		}
		raw, err = dialConnect(ctx, dial, p, addr)
	} else {
		raw, err = dial(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	conn, err := upgradeClient(ctx, raw, t.TLS, t.Host, addr, t.Name())
	if err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// upgradeClient runs TLS with ALPN cmg-tunnel/1 on raw and the upgrade exchange.
func upgradeClient(ctx context.Context, raw net.Conn, base *tls.Config, host, addr, transport string) (*tls.Conn, error) {
	cfg := base.Clone()
	cfg.NextProtos = []string{ALPN}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != ALPN {
		return nil, fmt.Errorf("%s did not select ALPN %s (got %q): not a cmg gateway's HTTPS port, or a TLS-inspecting proxy is in the way", addr, ALPN, p)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := "GET " + UpgradePath + " HTTP/1.1\r\nHost: " + cfg.ServerName + "\r\nConnection: Upgrade\r\nUpgrade: " +
		UpgradeProtocol + "\r\n" + HeaderTransport + ": " + transport + "\r\nUser-Agent: cmg-connector\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("upgrade request to %s: %w", addr, err)
	}
	// Read the answer without reading ahead: what follows belongs to the tunnel.
	hdr, err := readHeaderExact(conn, maxUpgradeHeader)
	if err != nil {
		return nil, fmt.Errorf("upgrade answer from %s: %w", addr, err)
	}
	if err := CheckUpgradeResponse(hdr); err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	_ = conn.SetDeadline(noDeadline)
	return conn, nil
}

// readHeaderExact reads an HTTP header up to and including the blank line, one
// byte at a time so that nothing after it is consumed.
func readHeaderExact(r io.Reader, limit int) ([]byte, error) {
	buf := make([]byte, 0, 256)
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = append(buf, b[0])
		if len(buf) > limit {
			return nil, fmt.Errorf("header longer than %d bytes", limit)
		}
		if b[0] == '\n' && (strings.HasSuffix(string(buf), "\r\n\r\n") || strings.HasSuffix(string(buf), "\n\n")) {
			return buf, nil
		}
	}
}

// UpgradeError is the gateway's refusal of an upgrade, with its CMG-Error reason.
type UpgradeError struct {
	Status int
	Reason string
}

func (e *UpgradeError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("the gateway refused the tunnel upgrade: %d %s", e.Status, e.Reason)
	}
	return fmt.Sprintf("the gateway refused the tunnel upgrade: %d", e.Status)
}

// CheckUpgradeResponse checks the gateway's answer to the upgrade: 101 with
// Upgrade: cmg-tunnel/1.
func CheckUpgradeResponse(hdr []byte) error {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(hdr))), nil)
	if err != nil {
		return fmt.Errorf("bad upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return &UpgradeError{Status: resp.StatusCode, Reason: resp.Header.Get("Cmg-Error")}
	}
	if !headerHasToken(resp.Header, "Upgrade", UpgradeProtocol) {
		return fmt.Errorf("the gateway switched to %q, not %s", resp.Header.Get("Upgrade"), UpgradeProtocol)
	}
	return nil
}

// headerHasToken reports whether a comma-separated header lists tok (case
// insensitive).
func headerHasToken(h http.Header, key, tok string) bool {
	for _, v := range h.Values(key) {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

// ParseUpgradeRequest checks a connector's upgrade request and returns the
// transport it says it came by. br must hold nothing beyond the request: the
// connector waits for 101 before it sends the hello.
func ParseUpgradeRequest(br *bufio.Reader) (transport string, err error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return "", &upgradeRefusal{status: http.StatusBadRequest, reason: "BadRequest", detail: "not an HTTP request: " + err.Error()}
	}
	if req.Body != nil && req.Body != http.NoBody {
		defer req.Body.Close()
	}
	switch {
	case req.URL.Path != UpgradePath:
		return "", &upgradeRefusal{status: http.StatusNotFound, reason: "RouteNotFound", detail: "the tunnel is at " + UpgradePath}
	case req.Method != http.MethodGet:
		return "", &upgradeRefusal{status: http.StatusMethodNotAllowed, reason: "MethodNotAllowed", detail: "the tunnel upgrade is a GET"}
	case !headerHasToken(req.Header, "Upgrade", UpgradeProtocol) || !headerHasToken(req.Header, "Connection", "upgrade"):
		return "", &upgradeRefusal{status: http.StatusBadRequest, reason: "BadRequest", detail: "expected Connection: Upgrade and Upgrade: " + UpgradeProtocol}
	case req.ContentLength != 0 || len(req.TransferEncoding) > 0:
		return "", &upgradeRefusal{status: http.StatusBadRequest, reason: "BadRequest", detail: "the upgrade request has no body"}
	case br.Buffered() > 0:
		return "", &upgradeRefusal{status: http.StatusBadRequest, reason: "BadRequest", detail: "data sent before the upgrade was answered"}
	}
	switch t := req.Header.Get(HeaderTransport); t {
	case TransportProxy:
		return TransportProxy, nil
	default:
		return TransportHTTPS, nil
	}
}

// upgradeRefusal is an upgrade request the gateway answers with an error.
type upgradeRefusal struct {
	status int
	reason string
	detail string
}

func (e *upgradeRefusal) Error() string { return e.detail }

// Upgrade serves one connection of the HTTPS transport whose TLS handshake is
// done (ALPN cmg-tunnel/1): it reads the upgrade request, answers 101 and runs
// the session until it ends. The gateway's shared 443 listener hands its
// cmg-tunnel/1 connections here.
func (s *Server) Upgrade(ctx context.Context, conn *tls.Conn) {
	_ = conn.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(io.LimitReader(conn, maxUpgradeHeader), 1024)
	transport, err := ParseUpgradeRequest(br)
	if err != nil {
		var ur *upgradeRefusal
		if errors.As(err, &ur) {
			body := `{"error":"` + ur.reason + `","detail":` + strconv.Quote(ur.detail) + "}\n"
			_, _ = io.WriteString(conn, "HTTP/1.1 "+strconv.Itoa(ur.status)+" "+http.StatusText(ur.status)+
				"\r\nCMG-Error: "+ur.reason+"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+
				strconv.Itoa(len(body))+"\r\n\r\n"+body)
		}
		s.refused("unknown", TransportHTTPS, "upgrade")
		s.log.Info("tunnel: bad upgrade request", "remote", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+UpgradeProtocol+"\r\n\r\n"); err != nil {
		conn.Close()
		return
	}
	s.ServeTLS(ctx, conn, transport)
}

// ServeHTTPS accepts the HTTPS transport on a dedicated listener (instance i's
// HTTPS tunnel port when the service has several instances): TLS, the upgrade,
// then a session for each connection, until ctx is done.
func (s *Server) ServeHTTPS(ctx context.Context, ln net.Listener) error {
	return s.acceptLoop(ctx, ln, func(raw net.Conn) {
		cfg := s.cfg.TLS.Clone()
		cfg.NextProtos = []string{ALPN}
		conn := tls.Server(raw, cfg)
		_ = raw.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			if errors.Is(err, io.EOF) {
				return // a TCP port check
			}
			s.refused("unknown", TransportHTTPS, "tls")
			s.log.Info("tunnel: TLS handshake failed", "remote", raw.RemoteAddr().String(), "transport", TransportHTTPS, "err", err)
			raw.Close()
			return
		}
		s.Upgrade(ctx, conn)
	})
}

// TLSConfig is the server's TLS configuration for tunnel connections.
func (s *Server) TLSConfig() *tls.Config { return s.cfg.TLS }

// Close closes every tunnel connection; the server takes no more. The gateway
// calls it at the end of its drain, after the drain notice.
func (s *Server) Close() { s.closeAll() }
