package gateway

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/notify"
	"github.com/cmg-gateway/cmg/tunnel"
)

// notificationsPath is the device's notification channel (DESIGN section 7:
// answered by the gateway itself).
const notificationsPath = "/cmg/v1/notifications"

// serveNotifications opens a device's notification channel: authenticated like
// a /CCM_Proxy_MutualAuth/ request (a client certificate, or a bearer token when
// none is presented), then server-sent events until the device goes away.
//
// The device's site: a site token's `site` claim; else the site of the role
// named by `?role=<RoleID>` (the device's management point); else the
// allow-list's only site. A connector reaches only the channels of its own site.
//
// With Last-Event-ID (the cursor of notify.Cursor) the channel starts with the
// events the device missed, fetched from every connector of its site that is
// connected to this instance.
func (g *Gateway) serveNotifications(x *exchange) {
	r := x.r
	if r.Method != http.MethodGet {
		x.w.Header().Set("Allow", http.MethodGet)
		g.fail(x, httperror.New(httperror.MethodNotAllowed, "the notification channel takes GET"))
		return
	}
	if g.draining.Load() {
		g.fail(x, httperror.New(httperror.Draining, "this instance is shutting down"))
		return
	}
	id, err := g.auth.Authenticate(r, auth.Mutual)
	if err != nil {
		g.fail(x, httperror.As(err, httperror.ClientCertificateRequired))
		return
	}
	x.ident = id
	g.observeDevice(id.Device)
	// The policy decides who may hold a channel; the channel itself holds no
	// concurrency slot (DESIGN section 8: channels do not count as in flight).
	if !g.admit(x) {
		return
	}
	x.permit.Release()
	n := g.notif
	site, herr := n.deviceSite(id, r)
	if herr != nil {
		g.fail(x, herr)
		return
	}
	sessions := n.siteSessions(site)
	if len(sessions) == 0 {
		e := httperror.New(httperror.ConnectorUnavailable, "no connector of the device's site is connected")
		e.RetryAfter = 2 * time.Second
		g.fail(x, e)
		return
	}
	cur, resume := n.cursorOf(r)
	ch, err := n.open(x, id.Device, site, cur, resume)
	if err != nil {
		x.reason, x.errMsg = httperror.ClientClosed, err.Error()
		return
	}
	if resume {
		// The sessions again, now that the channel is registered: a connector
		// that joins from here on catches the channel up itself.
		n.release(ch, n.fetchReplay(r.Context(), n.siteSessions(site), id.Device, &cur))
	}
}

// cursorOf returns the device's cursor from Last-Event-ID, or a fresh one based
// now when it sent none (or something that is not a cursor).
func (n *notifier) cursorOf(r *http.Request) (notify.Cursor, bool) {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		c, err := notify.ParseCursor(v)
		if err == nil {
			return c, true
		}
		n.log.Debug("notification channel: Last-Event-ID is not a cursor; starting afresh", "err", err)
	}
	return notify.Cursor{Base: n.now().UnixNano()}, false
}

// open hijacks the connection, writes the SSE header and the device's cursor,
// and registers the channel (holding live events while it resumes).
func (n *notifier) open(x *exchange, device, site string, cur notify.Cursor, resume bool) (*channel, error) {
	conn, brw, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack: %w", err)
	}
	if brw.Reader.Buffered() > 0 {
		conn.Close()
		return nil, fmt.Errorf("the device sent more after its request")
	}
	_ = conn.SetDeadline(time.Time{})
	raw := conn
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = tc.NetConn()
	}
	head := make([]byte, 0, 256)
	head = append(head, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"+
		"Connection: close\r\nX-Accel-Buffering: no\r\nCmg-Request-Id: "...)
	head = append(head, x.id...)
	head = append(head, "\r\n\r\n"...)
	hdrLen := len(head)
	head = notify.AppendCursorOnly(head, &cur)
	_ = conn.SetWriteDeadline(n.now().Add(n.cfg.WriteTimeout))
	if _, err := conn.Write(head); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write header: %w", err)
	}
	x.w.wroteHeader, x.w.status = true, http.StatusOK
	x.w.headerBytes, x.w.bodyBytes = int64(hdrLen), int64(len(head)-hdrLen)
	ch := &channel{conn: conn, raw: raw, device: device, site: site, opened: n.now().UnixNano(), cur: cur, slot: -1}
	if resume {
		ch.state = chHolding
	}
	if !n.register(ch) {
		conn.Close()
		return nil, errStopping
	}
	return ch, nil
}

// deviceSite decides the device's site (see serveNotifications).
func (n *notifier) deviceSite(id *auth.Identity, r *http.Request) (string, *httperror.Error) {
	al := n.g.allow.Load()
	var site string
	if id.Method == auth.SiteToken {
		claim, _ := id.Claims["site"].(string)
		var ok bool
		if site, ok = al.tokenSite(claim); !ok {
			return "", httperror.New(httperror.RouteNotFound, "the token's site is not in the allow-list")
		}
	}
	if roleID := r.URL.Query().Get("role"); roleID != "" {
		role := al.role(roleID)
		if role == nil {
			return "", httperror.New(httperror.RouteNotFound, "no role "+roleID+" in the allow-list")
		}
		if site != "" && site != role.Site {
			return "", httperror.New(httperror.BadRequest, "the role is not of the token's site")
		}
		site = role.Site
	}
	if site == "" {
		if len(al.connectors) != 1 {
			return "", httperror.New(httperror.BadRequest, "name the device's management point: "+notificationsPath+"?role=<RoleID>")
		}
		for s := range al.connectors {
			site = s
		}
	}
	if _, ok := al.connectors[site]; !ok {
		return "", httperror.New(httperror.RouteNotFound, "the device's site is not in the allow-list")
	}
	return site, nil
}

// siteSessions are the live, non-draining connector sessions of a site.
func (n *notifier) siteSessions(site string) []*tunnel.Session {
	var out []*tunnel.Session
	for _, s := range n.g.reg.Sessions() {
		if s.Site == site && !s.Draining() {
			out = append(out, s)
		}
	}
	return out
}
