package roles

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testPKI struct {
	pool                  *x509.CertPool
	caFile                string
	serverCert, serverKey string
	client                tls.Certificate
}

// newTestPKI writes a CA, a localhost server certificate and holds a client
// certificate, all fresh for the test.
func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pki := &testPKI{pool: x509.NewCertPool()}
	pki.pool.AddCert(ca)
	pki.caFile = writePEM("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := issue(2, "localhost", x509.ExtKeyUsageServerAuth)
	pki.serverCert = writePEM("server.pem", "CERTIFICATE", sDER)
	kb, _ := x509.MarshalECPrivateKey(sKey)
	pki.serverKey = writePEM("server-key.pem", "EC PRIVATE KEY", kb)
	cDER, cKey := issue(3, "connector cp1", x509.ExtKeyUsageClientAuth)
	pki.client = tls.Certificate{Certificate: [][]byte{cDER}, PrivateKey: cKey}
	return pki
}

func TestRunTLSClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	cfg := DefaultConfig()
	cfg.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile, RequireClientCert: true}
	_, base := startServer(t, cfg)
	url := strings.Replace(base, "http://", "https://", 1) + "/mp/cmg-echo"
	for _, tt := range []struct {
		name    string
		certs   []tls.Certificate
		wantErr bool
	}{
		{"with the connector's certificate", []tls.Certificate{pki.client}, false},
		{"without a certificate", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, ServerName: "localhost", Certificates: tt.certs}}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(url)
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("got a response, want the handshake refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e EchoReply
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if e.TLSClientSubject != "CN=connector cp1" || resp.Proto != "HTTP/1.1" {
				t.Errorf("got subject %q over %s, want CN=connector cp1 over HTTP/1.1", e.TLSClientSubject, resp.Proto)
			}
		})
	}
}

func TestRunGracefulShutdown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ShutdownGrace = 20 * time.Millisecond
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	resp, err := c.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A request parked past the grace period is cut when it ends.
	reqErr := make(chan error, 1)
	go func() {
		resp, err := c.Get("http://" + ln.Addr().String() + "/mp/cmg-echo?cmg-delay=1h")
		if err == nil {
			resp.Body.Close()
		}
		reqErr <- err
	}()
	for s.Stats().Kinds[kindHealth] == 0 || s.Stats().Roles[RoleMP].Requests == 0 {
		time.Sleep(time.Millisecond) // until the parked request reached its handler
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil after a shutdown", err)
	}
	if err := <-reqErr; err == nil {
		t.Error("the parked request got an answer, want it cut at the end of the grace period")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts after Run returned")
	}
}

func TestRunServeError(t *testing.T) {
	s, err := New(DefaultConfig(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	if err := s.Run(context.Background(), ln); err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Run on a closed listener: got %v, want an error", err)
	}
}
