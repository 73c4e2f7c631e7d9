package roles

import (
	"net"
	"sync"
	"sync/atomic"
)

// Role is the kind of simulated role a request was addressed to; it keys the stats.
type Role string

// The roles. RoleOther is everything outside the two mounts (health, stats, helpers
// at the root, unknown paths, bytes of requests that never reached a handler).
const (
	RoleMP    Role = "management_point"
	RoleSUP   Role = "software_update_point"
	RoleDP    Role = "distribution_point"
	RoleOther Role = "other"
)

var allRoles = []Role{RoleMP, RoleSUP, RoleDP, RoleOther}

// RoleStats counts one role's traffic. Wire bytes are counted on the socket (TLS
// records included when serving HTTPS) and are only known when the server runs on its
// own listener (Run); body bytes are the HTTP bodies as the handlers read and wrote
// them, and are counted either way.
type RoleStats struct {
	Requests          uint64 `json:"requests"`
	WireBytesReceived uint64 `json:"wire_bytes_received"`
	WireBytesSent     uint64 `json:"wire_bytes_sent"`
	BodyBytesReceived uint64 `json:"body_bytes_received"`
	BodyBytesSent     uint64 `json:"body_bytes_sent"`
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Roles is keyed by role kind (management_point, software_update_point, other).
	Roles map[Role]RoleStats `json:"roles"`
	// Kinds counts requests per simulated exchange (mp.policy_assignments, sup.sync_updates, ...).
	Kinds map[string]uint64 `json:"kinds"`
	// Connections is the number of connections accepted; Open those not yet closed.
	Connections uint64 `json:"connections"`
	Open        int64  `json:"open_connections"`
	// WireBytesReceived and WireBytesSent are all socket bytes, whichever role they
	// were attributed to; bytes of a connection still waiting for its next request
	// are counted here before they are attributed.
	WireBytesReceived uint64 `json:"wire_bytes_received"`
	WireBytesSent     uint64 `json:"wire_bytes_sent"`
}

type roleCounters struct {
	requests, wireIn, wireOut, bodyIn, bodyOut atomic.Uint64
}

// counters holds every counter of a Server. The kinds map is built once in New and
// only read afterwards, so counting takes no lock.
type counters struct {
	roles                     map[Role]*roleCounters
	kinds                     map[string]*atomic.Uint64
	conns                     atomic.Uint64
	open                      atomic.Int64
	wireInTotal, wireOutTotal atomic.Uint64
}

func newCounters() *counters {
	c := &counters{roles: map[Role]*roleCounters{}, kinds: map[string]*atomic.Uint64{}}
	for _, r := range allRoles {
		c.roles[r] = &roleCounters{}
	}
	for _, k := range allKinds {
		c.kinds[k] = &atomic.Uint64{}
	}
	return c
}

func (c *counters) kind(k string) {
	if n, ok := c.kinds[k]; ok {
		n.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{Roles: map[Role]RoleStats{}, Kinds: map[string]uint64{}}
	for r, rc := range c.roles {
		s.Roles[r] = RoleStats{
			Requests:          rc.requests.Load(),
			WireBytesReceived: rc.wireIn.Load(),
			WireBytesSent:     rc.wireOut.Load(),
			BodyBytesReceived: rc.bodyIn.Load(),
			BodyBytesSent:     rc.bodyOut.Load(),
		}
	}
	for k, n := range c.kinds {
		if v := n.Load(); v > 0 {
			s.Kinds[k] = v
		}
	}
	s.Connections = c.conns.Load()
	s.Open = c.open.Load()
	s.WireBytesReceived = c.wireInTotal.Load()
	s.WireBytesSent = c.wireOutTotal.Load()
	return s
}

// countingListener wraps every accepted connection in a countingConn.
type countingListener struct {
	net.Listener
	c *counters
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.conns.Add(1)
	l.c.open.Add(1)
	return &countingConn{Conn: conn, c: l.c}, nil
}

// countingConn counts the bytes of one connection and attributes them to roles.
//
// HTTP/1.1 serves one request at a time per connection, and a client sends the next
// request only after the previous response, so:
//   - bytes written belong to the request being served (the role of the last request
//     that reached a handler); bytes written before any request (the TLS handshake)
//     wait in pendingOut for the first one;
//   - bytes read belong to the next request until its handler starts (request line,
//     headers, TLS records, read-ahead body), so they wait in pendingIn and are given
//     to the role when the handler starts; while the handler reads the body they go to
//     the role directly, until the body hits EOF.
//
// Whatever is pending when the connection closes goes to the last role, or to other.
type countingConn struct {
	net.Conn
	c *counters

	mu         sync.Mutex
	role       *roleCounters // role of the request being served; nil before the first
	readLive   bool          // the handler is reading the body: reads go to role
	pendingIn  uint64
	pendingOut uint64
	closed     bool
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	if n > 0 {
		cc.c.wireInTotal.Add(uint64(n))
		cc.mu.Lock()
		if cc.readLive && cc.role != nil {
			cc.role.wireIn.Add(uint64(n))
		} else {
			cc.pendingIn += uint64(n)
		}
		cc.mu.Unlock()
	}
	return n, err
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	if n > 0 {
		cc.c.wireOutTotal.Add(uint64(n))
		cc.mu.Lock()
		if cc.role != nil {
			cc.role.wireOut.Add(uint64(n))
		} else {
			cc.pendingOut += uint64(n)
		}
		cc.mu.Unlock()
	}
	return n, err
}

// startRequest attributes the pending bytes to the role of the request whose handler
// is starting and makes body reads count for it.
func (cc *countingConn) startRequest(rc *roleCounters) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.role = rc
	rc.wireIn.Add(cc.pendingIn)
	rc.wireOut.Add(cc.pendingOut)
	cc.pendingIn, cc.pendingOut = 0, 0
	cc.readLive = true
}

// bodyDone ends live attribution of reads: what is read next belongs to the next
// request (or to the server's background read that watches for a closed client).
func (cc *countingConn) bodyDone() {
	cc.mu.Lock()
	cc.readLive = false
	cc.mu.Unlock()
}

func (cc *countingConn) Close() error {
	err := cc.Conn.Close()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return err
	}
	cc.closed = true
	rc := cc.role
	if rc == nil {
		rc = cc.c.roles[RoleOther]
	}
	rc.wireIn.Add(cc.pendingIn)
	rc.wireOut.Add(cc.pendingOut)
	cc.pendingIn, cc.pendingOut = 0, 0
	cc.c.open.Add(-1)
	return err
}
