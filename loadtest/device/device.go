// Package device is the load tester's simulated device: a Configuration
// Manager client with its own identity that performs the exchanges of a
// traffic profile's classes against gateway instances, with the original
// product's connection habits or cmg's, and counts every byte its sockets
// receive (TLS included) and every exchange's latency and outcome.
package device

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/identity"
	"github.com/cmg-gateway/cmg/loadtest/profile"
)

// Result is one exchange as the device saw it.
type Result struct {
	Class string
	Kind  profile.Kind
	Role  string
	// End is when the exchange finished (wall clock); Latency is from its
	// intended start (the schedule's time for an occurrence's first exchange,
	// so a slow gateway cannot hide queueing: no coordinated omission) to the
	// last byte of the response.
	End     time.Time
	Latency time.Duration
	Status  int
	// Reason is empty for a success, else the gateway's CMG-Error reason, or
	// "http_<status>", or a network reason (connect_refused, timeout, ...).
	Reason string
	// Read and Written are the socket bytes of the exchange, TLS included
	// (the handshake when it opened the connection).
	Read, Written int64
	NewConn       bool
	Resumed       bool
}

// Observer receives what devices do.
type Observer interface {
	Exchange(Result)
	// ConnBytes reports socket bytes outside any exchange (closing a kept-alive
	// connection), attributed to class ("" when none).
	ConnBytes(class string, read, written int64)
}

// Clock is the run's simulated clock.
type Clock interface {
	Now() time.Time
	// Wall converts a simulated duration to wall time.
	Wall(sim time.Duration) time.Duration
}

// Env is what every device of a run shares.
type Env struct {
	Profile    *profile.Profile
	HabitsName string
	Habits     profile.Habits
	Balancer   *Balancer
	// TLS holds the roots and server name; each device adds its certificate.
	TLS       *tls.Config
	Counters  *Counters
	Observer  Observer
	Clock     Clock
	MPRoleID  string
	SUPRoleID string
	// MPHost is the management point name messages are addressed to.
	MPHost string
	// Timeout bounds one exchange (wall time), connecting included.
	Timeout time.Duration
	// Seed makes message content and follow-up draws repeatable.
	Seed uint64
}

// Device is one simulated device.
type Device struct {
	env *Env
	idx int
	id  identity.Identity
	tls *tls.Config
	cl  client

	mu       sync.Mutex
	idle     []*conn
	ccmToken string
	cookie   string
	acc      map[string]float64
	draws    *rnd
	closed   bool
}

// New makes device idx with identity id.
func New(env *Env, idx int, id identity.Identity) *Device {
	cfg := env.TLS.Clone()
	cfg.MaxVersion = env.Habits.TLSVersion()
	cfg.NextProtos = []string{"http/1.1"}
	if env.Habits.TLSResumption {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	} else {
		cfg.SessionTicketsDisabled = true
	}
	if id.Certificate != nil {
		cfg.Certificates = []tls.Certificate{*id.Certificate}
	}
	g := newRnd(env.Seed ^ uint64(idx)*0x9e3779b97f4a7c15)
	host := fmt.Sprintf("DESKTOP-%08X", g.r.Uint32())
	d := &Device{
		env: env, idx: idx, id: id, tls: cfg,
		cl:    client{smsid: "GUID:" + strings.Trim(g.guid(), "{}"), netbios: host, fqdn: strings.ToLower(host) + ".corp.example.com"},
		acc:   map[string]float64{},
		draws: g,
	}
	if env.Profile.Auth == profile.AuthToken && id.Token == "" {
		// Devices start in the steady state: a token client already holds a
		// CCM token (a JWT of the size CCM_STS hands out, 1,566-byte reply),
		// which its ccm_token class renews.
		d.ccmToken = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + base64ish(g, 1480)
	}
	return d
}

// Name is the device's identity.
func (d *Device) Name() string { return d.id.Name }

// Plan is a class with its schedule's share and the classes that follow it.
type Plan struct {
	Class     profile.Class
	Followers []Follower
}

// Follower is a class that rides a leader's connection, ratio times per
// leader occurrence on average.
type Follower struct {
	Class profile.Class
	Ratio float64
}

// Plans returns the classes of p that run under habits and are simulated,
// leaders with their followers. Unsimulated kinds (the notification channel,
// content) are left out: the model prices them, the run cannot yet.
func Plans(p *profile.Profile, habits string) []*Plan {
	var out []*Plan
	byName := map[string]*Plan{}
	for _, c := range p.Classes {
		if c.Follows != "" || !c.RunsUnder(habits) || !c.Kind.Simulated() || c.Monthly() <= 0 {
			continue
		}
		pl := &Plan{Class: c}
		out = append(out, pl)
		byName[c.Name] = pl
	}
	for _, c := range p.Classes {
		if c.Follows == "" || !c.RunsUnder(habits) || !c.Kind.Simulated() || c.Monthly() <= 0 {
			continue
		}
		if l := byName[c.Follows]; l != nil {
			l.Followers = append(l.Followers, Follower{Class: c, Ratio: c.Monthly() / l.Class.Monthly()})
		}
	}
	return out
}

// Occur performs one occurrence of plan's class, intended to start at the
// wall time intended, then the followers due, on the same connection.
func (d *Device) Occur(ctx context.Context, pl *Plan, intended time.Time) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	g := newRnd(d.draws.r.Uint64())
	d.mu.Unlock()
	o := &occurrence{d: d, class: pl.Class, intended: intended, g: g}
	err := o.run(ctx)
	if err == nil {
		for _, f := range pl.Followers {
			d.mu.Lock()
			a, ok := d.acc[f.Class.Name]
			if !ok {
				a = d.draws.r.Float64()
			}
			a += f.Ratio
			n := int(a)
			d.acc[f.Class.Name] = a - float64(n)
			d.mu.Unlock()
			for range n {
				o.class, o.exchanges = f.Class, 0
				o.intended = time.Now()
				if o.run(ctx) != nil {
					break
				}
			}
		}
	}
	o.release()
}

// Close closes the device's idle connections gracefully.
func (d *Device) Close() {
	d.mu.Lock()
	d.closed = true
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	for _, c := range idle {
		d.closeConn(c, "")
	}
}

func (d *Device) closeConn(c *conn, class string) {
	r0, w0 := c.raw.read, c.raw.written
	c.closeGracefully()
	d.env.Observer.ConnBytes(class, c.raw.read-r0, c.raw.written-w0)
}

// takeIdle returns an idle connection still within the keep-alive time.
func (d *Device) takeIdle(class string) *conn {
	keep := d.env.Habits.KeepAliveIdle.D()
	now := d.env.Clock.Now()
	for {
		d.mu.Lock()
		if len(d.idle) == 0 {
			d.mu.Unlock()
			return nil
		}
		c := d.idle[len(d.idle)-1]
		d.idle = d.idle[:len(d.idle)-1]
		d.mu.Unlock()
		if c.timer != nil {
			c.timer.Stop()
		}
		if now.Sub(c.idleSince) <= keep {
			return c
		}
		d.closeConn(c, class)
	}
}

// putIdle keeps c for the next exchange, closing it once the keep-alive time
// (simulated) is over.
func (d *Device) putIdle(c *conn, class string) {
	c.idleSince = d.env.Clock.Now()
	d.mu.Lock()
	if d.closed || len(d.idle) >= 1 {
		d.mu.Unlock()
		d.closeConn(c, class)
		return
	}
	d.idle = append(d.idle, c)
	c.timer = time.AfterFunc(d.env.Clock.Wall(d.env.Habits.KeepAliveIdle.D()), func() { d.expire(c) })
	d.mu.Unlock()
}

func (d *Device) expire(c *conn) {
	d.mu.Lock()
	for i, x := range d.idle {
		if x == c {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			d.mu.Unlock()
			d.closeConn(c, "")
			return
		}
	}
	d.mu.Unlock()
}

// connect dials a target the balancer picks, retrying others with backoff
// until the deadline.
func (d *Device) connect(ctx context.Context) (*conn, error) {
	var last error
	for {
		t, wait := d.env.Balancer.pick(d.idx)
		if wait > 0 {
			dl, ok := ctx.Deadline()
			if ok && time.Until(dl) < wait {
				if last == nil {
					last = fmt.Errorf("every target is backing off: %w", context.DeadlineExceeded)
				}
				return nil, last
			}
			select {
			case <-ctx.Done():
				if last == nil {
					last = ctx.Err()
				}
				return nil, last
			case <-time.After(wait):
			}
		}
		c, err := dial(ctx, t, d.tls, d.env.Counters)
		if err == nil {
			d.env.Balancer.succeeded(t)
			return c, nil
		}
		d.env.Counters.ConnectFailures.Add(1)
		last = err
		if ctx.Err() != nil {
			return nil, last
		}
		d.env.Balancer.failed(t)
	}
}

// bearer is the token the device sends with every request: its own (a site
// token), or the CCM token CCM_STS gave it when the profile's devices are
// token clients; "" for a PKI client.
func (d *Device) bearer() string {
	if d.id.Token != "" {
		return d.id.Token
	}
	if d.env.Profile.Auth != profile.AuthToken {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ccmToken
}

func (d *Device) prefix(role string) string {
	mode := "/CCM_Proxy_MutualAuth/"
	if d.id.Certificate == nil {
		mode = "/CCM_Proxy_ServerAuth/"
	}
	id := d.env.MPRoleID
	if role == profile.RoleSUP {
		id = d.env.SUPRoleID
	}
	return mode + id
}

// occurrence is one run of a class (and its followers) on one connection.
type occurrence struct {
	d         *Device
	class     profile.Class
	intended  time.Time
	g         *rnd
	conn      *conn
	exchanges int
	closeConn bool
}

// request is one exchange to perform.
type request struct {
	method, path string // path behind the role prefix, with its query
	role         string
	header       http.Header
	body         []byte
	keep         bool // keep the response body
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errStatus stops an occurrence after an error response.
type errStatus struct{ reason string }

func (e *errStatus) Error() string { return "error response: " + e.reason }

func (o *occurrence) do(ctx context.Context, r request) (*response, error) {
	d := o.d
	start := time.Now()
	base := start
	if o.exchanges == 0 {
		base = o.intended
	}
	o.exchanges++
	ctx, cancel := context.WithTimeout(ctx, d.env.Timeout)
	defer cancel()
	res := Result{Class: o.class.Name, Kind: o.class.Kind, Role: o.class.Kind.Role()}
	var resp *response
	var err error
	for attempt := 0; ; attempt++ {
		var r0, w0 int64
		fresh := false
		if o.conn == nil {
			if c := d.takeIdle(o.class.Name); c != nil {
				o.conn = c
			} else {
				c, err = d.connect(ctx)
				if err != nil {
					break
				}
				o.conn, fresh = c, true
				res.NewConn, res.Resumed = true, c.resumed
			}
		}
		if !fresh {
			r0, w0 = o.conn.raw.read, o.conn.raw.written
		}
		var gotBytes bool
		resp, gotBytes, err = o.exchange(ctx, r)
		res.Read += o.conn.raw.read - r0
		res.Written += o.conn.raw.written - w0
		if err == nil {
			break
		}
		// A kept-alive connection the gateway closed meanwhile fails before any
		// response byte: the request never reached the gateway, so send it again
		// on a new connection, once.
		reused := !fresh
		r0, w0 = o.conn.raw.read, o.conn.raw.written
		o.conn.abort()
		d.env.Observer.ConnBytes(o.class.Name, o.conn.raw.read-r0, o.conn.raw.written-w0)
		o.conn = nil
		if !(reused && !gotBytes && isNetClosed(err) && attempt == 0) {
			break
		}
	}
	res.End = time.Now()
	res.Latency = res.End.Sub(base)
	switch {
	case err != nil:
		res.Reason = classify(err)
	case resp.status >= 400:
		res.Status = resp.status
		res.Reason = resp.header.Get("CMG-Error")
		if res.Reason == "" {
			res.Reason = fmt.Sprintf("http_%d", resp.status)
		}
		err = &errStatus{res.Reason}
	default:
		res.Status = resp.status
	}
	d.env.Observer.Exchange(res)
	return resp, err
}

// exchange writes r on the occurrence's connection and reads the response.
func (o *occurrence) exchange(ctx context.Context, r request) (*response, bool, error) {
	c := o.conn
	d := o.d
	if dl, ok := ctx.Deadline(); ok {
		_ = c.tls.SetDeadline(dl)
	}
	req, err := http.NewRequest(r.method, "https://"+c.target.ServerName+d.prefix(r.role)+r.path, bytes.NewReader(r.body))
	if err != nil {
		return nil, false, err
	}
	req.Host = c.target.ServerName
	for k, v := range r.header {
		req.Header[k] = v
	}
	if b := d.bearer(); b != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+b)
	}
	if r.body == nil {
		req.ContentLength = 0
		req.Body = nil
	}
	if err := req.Write(c.bw); err != nil {
		return nil, false, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, false, err
	}
	readBefore := c.raw.read
	hr, err := http.ReadResponse(c.br, req)
	if err != nil {
		return nil, c.raw.read > readBefore, err
	}
	resp := &response{status: hr.StatusCode, header: hr.Header}
	if r.keep {
		resp.body, err = io.ReadAll(io.LimitReader(hr.Body, 16<<20))
	} else {
		bp := copyBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(io.Discard, hr.Body, *bp)
		copyBufs.Put(bp)
	}
	_ = hr.Body.Close()
	if err != nil {
		return nil, true, err
	}
	if hr.Close {
		o.closeConn = true
	}
	return resp, true, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// release closes the occurrence's connection or keeps it alive.
func (o *occurrence) release() {
	c := o.conn
	if c == nil {
		return
	}
	o.conn = nil
	if o.closeConn || c.broken || o.d.env.Habits.ConnectionPerExchange {
		o.d.closeConn(c, o.class.Name)
		return
	}
	o.d.putIdle(c, o.class.Name)
}
