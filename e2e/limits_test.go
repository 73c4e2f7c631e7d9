package e2e

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/gateway"
)

// Slow devices and the listener limits (SECURITY.md, "Limits"). The
// assertions are about what happens (the gateway cuts the connection, the
// limit answers), with bounds far above the configured timeouts, never about
// how fast.

func TestSlowDevicesAreCut(t *testing.T) {
	e := newHostileEnv(t, func(c *gateway.Config) {
		c.Client.ReadHeaderTimeout = 500 * time.Millisecond
		c.Client.ProgressTimeout = time.Second
		c.Limits.HandshakeTimeout = 500 * time.Millisecond
	})
	addr := clientAddr(e.m, 0)
	cfg := deviceTLS(t, e.m, true)
	// cutWhile reports whether the gateway closed c while send kept trickling.
	cutWhile := func(t *testing.T, c net.Conn, trickle string) {
		t.Helper()
		closed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, c)
			close(closed)
		}()
		for i := 0; i < len(trickle); i++ {
			select {
			case <-closed:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte{trickle[i]}); err != nil {
				return // the gateway closed it
			}
		}
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("the gateway kept the connection through %d bytes trickled 100 ms apart", len(trickle))
		}
	}
	t.Run("slowloris before TLS", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cutWhile(t, c, strings.Repeat("\x16", 300)) // a ClientHello that never completes
	})
	t.Run("slowloris header", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cutWhile(t, c, "GET "+mpPrefix+"/cmg-echo HTTP/1.1\r\nHost: localhost\r\n"+strings.Repeat("X-Slow: 1\r\n", 30))
	})
	t.Run("slow body", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST "+mpPrefix+"/cmg-sink HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nstart"); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, c); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the gateway kept a stalled upload past its progress timeout")
		}
	})
	t.Run("slow reader of a download", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET "+mpPrefix+"/cmg-blob?size=268435456 HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// Read nothing for a while: the gateway's writes stall, and its
		// progress timeout must end the transfer. Then the device reads what
		// was buffered and finds the response cut, not the whole 256 MiB.
		time.Sleep(4 * time.Second)
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if n >= 256<<20 {
			t.Fatalf("the stalled reader got the whole download (%d bytes, %v), want it cut", n, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the gateway kept the stalled download's connection open (read %d bytes)", n)
		}
		t.Logf("the stalled reader got %d bytes before the gateway cut the response", n)
		waitFor(t, "the access log to record the cut download", 10*time.Second, func() bool {
			return strings.Contains(readLog(t, e.logs["gateway-0"]), `"reason":"ClientClosed"`)
		})
	})
	// Everyone else was served all along.
	if r := e.curl(true, e.m.Gateways[0].ClientURL+e.m.ExamplePath); r.status != 200 {
		t.Errorf("a normal device got %d %s after the slow ones", r.status, r.stderr)
	}
	if v := metricValue(scrape(t, e.gws[0].admin), "cmg_gateway_client_connections"); v > 2 {
		t.Errorf("cmg_gateway_client_connections = %v after the slow devices left, want them gone", v)
	}
}

// dialFrom opens a TLS connection to addr from a given loopback source address.
func dialFrom(src, addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func TestListenerLimits(t *testing.T) {
	e := newHostileEnv(t, func(c *gateway.Config) {
		c.Limits.ExemptCIDRs = []string{"127.0.0.1/32"}
		c.Limits.MaxConnectionsPerSource = 5
		c.Limits.HandshakesPerSecondPerSource = 0.5
		c.Limits.HandshakeBurstPerSource = 8
	})
	addr := clientAddr(e.m, 0)
	cfg := deviceTLS(t, e.m, true)
	request := func(c *tls.Conn) (int, error) {
		if _, err := io.WriteString(c, "GET "+mpPrefix+"/cmg-echo HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			return 0, err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := tryReadResponses(c, 1)
		if err != nil || len(got) != 1 {
			return 0, errors.Join(errors.New("no answer"), err)
		}
		return got[0].status, nil
	}
	t.Run("per-source connection limit", func(t *testing.T) {
		var conns []*tls.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < 5; i++ {
			c, err := dialFrom("127.0.0.2", addr, cfg)
			if err != nil {
				t.Fatalf("connection %d from 127.0.0.2: %v", i+1, err)
			}
			if st, err := request(c); err != nil || st != 200 {
				t.Fatalf("connection %d: %d %v", i+1, st, err)
			}
			conns = append(conns, c)
		}
		if c, err := dialFrom("127.0.0.2", addr, cfg); err == nil {
			_, rerr := request(c)
			c.Close()
			if rerr == nil {
				t.Fatal("a sixth connection from 127.0.0.2 was served, want it closed before TLS")
			}
		}
		c, err := dialFrom("127.0.0.3", addr, cfg)
		if err != nil {
			t.Fatalf("another source was refused: %v", err)
		}
		defer c.Close()
		if st, err := request(c); err != nil || st != 200 {
			t.Fatalf("another source: %d %v", st, err)
		}
		conns[0].Close()
		conns = conns[1:]
		waitFor(t, "a slot to free up for 127.0.0.2", 10*time.Second, func() bool {
			c, err := dialFrom("127.0.0.2", addr, cfg)
			if err != nil {
				return false
			}
			defer c.Close()
			st, err := request(c)
			return err == nil && st == 200
		})
	})
	t.Run("per-source handshake rate", func(t *testing.T) {
		refused := 0
		for i := 0; i < 12; i++ {
			c, err := dialFrom("127.0.0.4", addr, cfg)
			if err != nil {
				refused++
				continue
			}
			if _, err := request(c); err != nil {
				refused++
			}
			c.Close()
		}
		if refused < 3 {
			t.Errorf("%d of 12 quick connections from one source were refused, want at least 3 over a burst of 8", refused)
		}
	})
	t.Run("exempt source is never limited", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			c, err := dialFrom("127.0.0.1", addr, cfg)
			if err != nil {
				t.Fatalf("connection %d from the exempt 127.0.0.1: %v", i+1, err)
			}
			st, err := request(c)
			c.Close()
			if err != nil || st != 200 {
				t.Fatalf("connection %d from the exempt 127.0.0.1: %d %v", i+1, st, err)
			}
		}
	})
	fams := scrape(t, e.gws[0].admin)
	for _, r := range []string{"per_source_connections", "handshake_rate"} {
		if metricValue(fams, "cmg_gateway_connections_refused_total", "reason", r) < 1 {
			t.Errorf("cmg_gateway_connections_refused_total{reason=%q} did not count", r)
		}
	}
}

func TestInFlightLimitAnswersOverloaded(t *testing.T) {
	e := newHostileEnv(t, func(c *gateway.Config) {
		c.Limits.MaxInFlight = 2
		c.Limits.MaxQueue = 1
		c.Limits.QueueTimeout = 300 * time.Millisecond
		c.Limits.RetryAfter = 7 * time.Second
	})
	base := e.m.Gateways[0].ClientURL
	client := e.deviceClient(true)
	var wg sync.WaitGroup
	slow := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(base + mpPrefix + "/cmg-echo?cmg-delay=4s")
			if err != nil {
				slow <- 0
				return
			}
			resp.Body.Close()
			slow <- resp.StatusCode
		}()
	}
	waitFor(t, "two requests in flight", 10*time.Second, func() bool {
		return metricValue(scrape(t, e.gws[0].admin), "cmg_gateway_requests_in_flight") == 2
	})
	// Two more at once: one waits in the queue and times out, the other finds
	// the queue full; both get 503 Overloaded with Retry-After.
	var over sync.WaitGroup
	results := make(chan *http.Response, 2)
	for i := 0; i < 2; i++ {
		over.Add(1)
		go func() {
			defer over.Done()
			resp, err := client.Get(base + e.m.ExamplePath)
			if err != nil {
				results <- nil
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp
		}()
	}
	over.Wait()
	close(results)
	for resp := range results {
		if resp == nil {
			t.Fatal("an overloaded request failed without an answer")
		}
		if resp.StatusCode != 503 || resp.Header.Get("CMG-Error") != "Overloaded" || resp.Header.Get("Retry-After") != "7" {
			t.Errorf("got %d CMG-Error %q Retry-After %q, want 503 Overloaded, Retry-After 7", resp.StatusCode, resp.Header.Get("CMG-Error"), resp.Header.Get("Retry-After"))
		}
	}
	// The notification channel does not count against the limit.
	resp, err := client.Get(base + gateway.NotificationPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("CMG-Error") == "Overloaded" {
		t.Errorf("the notification channel got Overloaded, want it exempt from the in-flight limit")
	}
	wg.Wait()
	close(slow)
	for st := range slow {
		if st != 200 {
			t.Errorf("a request holding a slot got %d, want 200", st)
		}
	}
	if r := e.curl(true, base+e.m.ExamplePath); r.status != 200 {
		t.Errorf("after the load: %d, want 200", r.status)
	}
	fams := scrape(t, e.gws[0].admin)
	if v := metricValue(fams, "cmg_gateway_errors_total", "reason", "Overloaded"); v != 2 {
		t.Errorf("cmg_gateway_errors_total{reason=Overloaded} = %v, want 2", v)
	}
}
