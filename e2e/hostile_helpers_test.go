package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/pki"
)

// rawResponse is one response read off a raw connection.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// contractError is the JSON body of DESIGN section 8.
type contractError struct {
	Error     string `json:"error"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
}

// check reports whether the response is the contract error with the reason:
// status, CMG-Error header and the JSON body.
func (r rawResponse) checkContract(t *testing.T, status int, reason string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got status %d (CMG-Error %q, body %q), want %d %s", r.status, r.header.Get("CMG-Error"), r.body, status, reason)
	}
	if got := r.header.Get("CMG-Error"); got != reason {
		t.Errorf("CMG-Error = %q, want %q", got, reason)
	}
	var b contractError
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error != reason || b.RequestID == "" {
		t.Errorf("body %q, want the JSON error %q with a request id", r.body, reason)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

// echoOf decodes a cmg-echo answer.
func (r rawResponse) echoOf(t *testing.T) echo {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got status %d (CMG-Error %q, body %q), want 200 from cmg-echo", r.status, r.header.Get("CMG-Error"), r.body)
	}
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("echo body %q: %v", r.body, err)
	}
	return e
}

// deviceTLS is a device's TLS configuration: the demo CA, and the demo device
// certificate when withCert.
func deviceTLS(t testing.TB, m *demo.Manifest, withCert bool) *tls.Config {
	t.Helper()
	roots := x509.NewCertPool()
	data, err := os.ReadFile(m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(data)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	if withCert {
		c, err := tls.LoadX509KeyPair(m.ClientCertFile, m.ClientKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// rawExchange sends raw bytes on a fresh TLS connection and reads up to n
// responses, fewer when the gateway closes the connection first.
func rawExchange(t *testing.T, addr string, cfg *tls.Config, raw string, n int) []rawResponse {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	return readResponses(t, c, n)
}

func readResponses(t *testing.T, c net.Conn, n int) []rawResponse {
	t.Helper()
	out, err := tryReadResponses(c, n)
	if err != nil {
		t.Fatalf("%v (after %d responses)", err, len(out))
	}
	return out
}

// tryReadResponses reads up to n responses; a connection closed early is not
// an error, a malformed response or a timeout before the first one is.
func tryReadResponses(c net.Conn, n int) ([]rawResponse, error) {
	br := bufio.NewReader(c)
	var out []rawResponse
	for len(out) < n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return out, nil
			}
			return out, fmt.Errorf("reading a response: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return out, fmt.Errorf("reading a response body: %w", err)
		}
		out = append(out, rawResponse{status: resp.StatusCode, header: resp.Header, body: body})
		if resp.Close {
			return out, nil
		}
	}
	return out, nil
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// issueDeviceCert issues a device certificate from the demo device CA with the
// given usages and returns it as a TLS certificate (leaf and issuing CA).
func issueDeviceCert(t *testing.T, m *demo.Manifest, cn string, ku x509.KeyUsage, eku []x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	dir := pki.Dir(m.PKIDir)
	caPEM, err := os.ReadFile(dir.Path(pki.DeviceCACert))
	if err != nil {
		t.Fatal(err)
	}
	caBlock, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(dir.Path(pki.DeviceCAKey))
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     ku,
		ExtKeyUsage:  eku,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}
}

// clientAddr is a gateway instance's device listener address (host:port).
func clientAddr(m *demo.Manifest, i int) string {
	return strings.TrimPrefix(m.Gateways[i].ClientURL, "https://")
}

// readLog returns a log file's content.
func readLog(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
