package gateway

import (
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Listeners of the wire counters.
const (
	wireClient = 0
	wireTunnel = 1
)

var wireListenerLabels = [2]string{"client", "tunnel"}

// wireCounters count the bytes on the gateway's sockets, below TLS: what a cloud
// bills. Each accepted connection of the client and tunnel listeners is wrapped,
// and every read and write adds what it moved, so the totals equal the sockets'
// byte counts (TLS records, handshakes and alerts included). Egress also feeds the
// cost model's egress rate.
type wireCounters struct {
	egress  [2]atomic.Uint64
	ingress [2]atomic.Uint64
	// onEgress, when set, is told of every byte written (the cost model).
	onEgress func(n uint64)

	egressDesc, ingressDesc *prometheus.Desc
}

func newWireCounters(reg prometheus.Registerer, onEgress func(uint64)) (*wireCounters, error) {
	w := &wireCounters{
		onEgress: onEgress,
		egressDesc: prometheus.NewDesc("cmg_gateway_wire_egress_bytes_total",
			"Bytes written to the sockets of the listener (client: devices; tunnel: connectors), TLS included.",
			[]string{"listener"}, nil),
		ingressDesc: prometheus.NewDesc("cmg_gateway_wire_ingress_bytes_total",
			"Bytes read from the sockets of the listener (client: devices; tunnel: connectors), TLS included.",
			[]string{"listener"}, nil),
	}
	if err := reg.Register(w); err != nil {
		return nil, err
	}
	return w, nil
}

// Describe implements prometheus.Collector.
func (w *wireCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.egressDesc
	ch <- w.ingressDesc
}

// Collect implements prometheus.Collector.
func (w *wireCounters) Collect(ch chan<- prometheus.Metric) {
	for i, l := range wireListenerLabels {
		ch <- prometheus.MustNewConstMetric(w.egressDesc, prometheus.CounterValue, float64(w.egress[i].Load()), l)
		ch <- prometheus.MustNewConstMetric(w.ingressDesc, prometheus.CounterValue, float64(w.ingress[i].Load()), l)
	}
}

// listener wraps ln so that its connections count into the listener's counters.
func (w *wireCounters) listener(ln net.Listener, which int) net.Listener {
	return &wireListener{Listener: ln, w: w, which: which}
}

type wireListener struct {
	net.Listener
	w     *wireCounters
	which int
}

func (l *wireListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &wireConn{Conn: c, w: l.w}
	wc.which.Store(int32(l.which))
	return wc, nil
}

// wireConn counts what passes through one accepted connection.
type wireConn struct {
	net.Conn
	w     *wireCounters
	which atomic.Int32
}

func (c *wireConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.w.ingress[c.which.Load()].Add(uint64(n))
	}
	return n, err
}

func (c *wireConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.w.egress[c.which.Load()].Add(uint64(n))
		if c.w.onEgress != nil {
			c.w.onEgress(uint64(n))
		}
	}
	return n, err
}

// CloseWrite half-closes the connection when the socket can (TCP).
func (c *wireConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// SetListener moves the connection's counting to another listener's counters
// from now on: an HTTPS tunnel that arrives on the client listener (ALPN
// cmg-tunnel/1) counts as tunnel traffic once it is recognised.
func (c *wireConn) SetListener(which int) { c.which.Store(int32(which)) }

// Unwrap returns the socket (for code that needs the *net.TCPConn).
func (c *wireConn) Unwrap() net.Conn { return c.Conn }
