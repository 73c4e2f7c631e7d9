package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/tunnel"
)

// transports is the gateway's side of the connector transports and of drain: the
// dedicated HTTPS tunnel listener, the tunnel context that upgrades arriving on
// the shared client listener run under, and the count of device requests being
// served (which drain waits for).
type transports struct {
	httpsLn net.Listener
	tctx    context.Context
	// active counts device requests in the handler; final is set once the grace
	// period is over (later requests get 503 Draining).
	active drainCounter
}

// HTTPSTunnelListen is the dedicated HTTPS tunnel address: tunnel.https_listen,
// else ":<10124+instance>" when the service has several instances, else none
// (with one instance the HTTPS transport shares the client listener, 443).
func (c *Config) HTTPSTunnelListen() string {
	switch c.Tunnel.HTTPSListen {
	case "none":
		return ""
	case "":
		if c.Instances > 1 {
			return fmt.Sprintf(":%d", DefaultHTTPSTunnelPortBase+c.Instance)
		}
		return ""
	}
	return c.Tunnel.HTTPSListen
}

// validateTransports checks the sections this file and drain.go own.
func (c *Config) validateTransports(ps *configfile.Problems) {
	if l := c.Tunnel.HTTPSListen; l != "" && l != "none" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			ps.Addf("tunnel.https_listen", "%v (or \"none\")", err)
		}
	}
	c.ProxyProtocol.validate(ps)
	c.Drain.validate(ps)
}

// listenTransports opens the dedicated HTTPS tunnel listener, if any, and puts
// PROXY protocol in front of the client and tunnel listeners.
func (g *Gateway) listenTransports() error {
	if a := g.cfg.HTTPSTunnelListen(); a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("gateway: HTTPS tunnel listener: %w", err)
		}
		g.tx.httpsLn = proxyProtoListener(g.obs.wire.listener(ln, wireTunnel), g.cfg.ProxyProtocol)
	}
	g.clientLn = proxyProtoListener(g.clientLn, g.cfg.ProxyProtocol)
	g.tunnelLn = proxyProtoListener(g.tunnelLn, g.cfg.ProxyProtocol)
	return nil
}

func (g *Gateway) closeTransports() {
	if g.tx.httpsLn != nil {
		g.tx.httpsLn.Close()
	}
}

// HTTPSTunnelAddr is the dedicated HTTPS tunnel listener's address, or nil.
func (g *Gateway) HTTPSTunnelAddr() net.Addr {
	if g.tx.httpsLn == nil {
		return nil
	}
	return g.tx.httpsLn.Addr()
}

// serveTransports serves the dedicated HTTPS tunnel listener under tctx, which
// is also the context of the tunnels upgraded on the shared client listener.
func (g *Gateway) serveTransports(tctx context.Context, errc chan<- error) {
	g.tx.tctx = tctx
	if g.tx.httpsLn != nil {
		go func() { errc <- g.tun.ServeHTTPS(tctx, g.tx.httpsLn) }()
	}
}

// shareClientListener lets the HTTPS transport share the device listener (DESIGN
// section 4): a client offering the ALPN protocol cmg-tunnel/1 gets the
// connector-CA mutual-TLS configuration, and its connection is handed to the
// tunnel server for the upgrade; devices (http/1.1) are unaffected. It also puts
// the drain wrapper around the device handler.
func (g *Gateway) shareClientListener(srv *http.Server) {
	tunnelTLS := g.tun.TLSConfig().Clone()
	tunnelTLS.NextProtos = []string{tunnel.ALPN}
	srv.TLSConfig.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(hello.SupportedProtos, tunnel.ALPN) {
			return tunnelTLS, nil
		}
		return nil, nil
	}
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		tunnel.ALPN: func(_ *http.Server, c *tls.Conn, _ http.Handler) {
			countAsTunnel(c.NetConn())
			ctx := g.tx.tctx
			if ctx == nil {
				ctx = context.Background()
			}
			g.tun.Upgrade(ctx, c)
		},
	}
	srv.Handler = drainHandler{g}
}

// countAsTunnel finds the wire counter under c (below PROXY protocol) and moves
// the connection's bytes to the tunnel listener's counters.
func countAsTunnel(c net.Conn) {
	for c != nil {
		if w, ok := c.(*wireConn); ok {
			w.SetListener(wireTunnel)
			return
		}
		switch u := c.(type) {
		case interface{ Raw() net.Conn }:
			c = u.Raw()
		case interface{ Unwrap() net.Conn }:
			c = u.Unwrap()
		default:
			return
		}
	}
}
