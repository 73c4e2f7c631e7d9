// Command tlsload is the benchmark harness's load generator for full TLS
// handshakes: each of -c workers loops dial, a full TLS 1.3 handshake (no
// session cache, so never a resumption) with a client certificate, one HTTP/1.1
// GET with "Connection: close", the whole response, close. It prints one JSON
// object: connections completed, seconds, connections per second and the p50
// and p99 of one connection's time (dial to last response byte).
//
//	tlsload -url https://127.0.0.1:8443/path -cert c.pem -key k.pem -ca ca.pem -c 16 -d 10s
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Connections int64   `json:"connections"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	FirstError  string  `json:"first_error,omitempty"`
}

func main() {
	rawURL := flag.String("url", "", "https `URL` to GET on every connection")
	certFile := flag.String("cert", "", "client certificate `file` (PEM, leaf first)")
	keyFile := flag.String("key", "", "client key `file` (PEM)")
	caFile := flag.String("ca", "", "`file` of the roots that sign the server certificate")
	conc := flag.Int("c", 16, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "how long to run")
	flag.Parse()
	if err := run(*rawURL, *certFile, *keyFile, *caFile, *conc, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(1)
	}
}

func run(rawURL, certFile, keyFile, caFile string, conc int, dur time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" {
		return fmt.Errorf("-url must be an https URL, not %q", rawURL)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", caFile)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   host,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"http/1.1"},
		// X25519 as the devices' TLS stacks (and wrk's OpenSSL 3.0) offer it.
		CurvePreferences: []tls.CurveID{tls.X25519},
		// No ClientSessionCache: every handshake is a full one.
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: close\r\n\r\n")

	end := time.Now().Add(dur)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var n, nerr atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{}
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := once(ctx, &d, u.Host, cfg, req); err != nil {
					// At the end a dial fails with a timeout a moment before
					// ctx says it is done: not an error of the server.
					if ctx.Err() != nil || !time.Now().Before(end) {
						return
					}
					nerr.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{Connections: n.Load(), Errors: nerr.Load(), Seconds: secs, PerSecond: float64(n.Load()) / secs,
		P50ms: pct(all, 0.50), P99ms: pct(all, 0.99)}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// once makes one connection: full handshake, one GET, the whole response.
func once(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config, req []byte) error {
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	if c.ConnectionState().DidResume {
		return errors.New("the session was resumed")
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

func pct(s []time.Duration, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(q * float64(len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}
