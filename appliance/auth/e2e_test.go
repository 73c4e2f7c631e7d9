package auth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// TestMutualTLSOverRealSockets runs the certificate path behind a real TLS
// listener: the chain is verified once per connection (the same Identity
// serves every request of a keep-alive connection) while revocation is checked
// on every request, so revoking a certificate cuts a live connection off.
func TestMutualTLSOverRealSockets(t *testing.T) {
	root := newRootCA(t, "Test Root")
	leaf, key := root.leafWithKey(t, "Ghost-01")
	dir := t.TempDir()
	crlFile := writeFile(t, dir, "root.crl", root.crl(t, 1, t0, 24*time.Hour))
	cfg := DefaultConfig()
	cfg.Certificates.Roots = []string{writeCerts(t, dir, "roots.pem", root.cert)}
	cfg.Revocation.Enabled = true
	cfg.Revocation.Files = []string{crlFile}
	clock := newClock()
	a, err := New(cfg, &Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authenticate(r, Mutual)
		if err != nil {
			httperror.Write(w, "req", httperror.As(err, httperror.ClientCertificateRequired))
			return
		}
		fmt.Fprintf(w, "%s %p", id.Device, id)
	}))
	// The gateway verifies chains itself (with its clock, intermediates and CRLs),
	// so TLS only asks for the certificate.
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return WithConnCache(ctx) }
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := srv.Client()
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}

	get := func() (int, string, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + "/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut?MPLIST")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get(httperror.Header), string(body)
	}

	code, _, first := get()
	if code != http.StatusOK {
		t.Fatalf("first request: got %d %s, want 200", code, first)
	}
	if _, _, second := get(); second != first {
		t.Errorf("got identity %q on the same connection, want the cached %q", second, first)
	}

	writeFile(t, dir, "root.crl", root.crl(t, 2, t0, 24*time.Hour, leaf.SerialNumber))
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, reason, body := get()
	if code != http.StatusForbidden || reason != string(httperror.ClientCertificateRevoked) {
		t.Fatalf("after revocation: got %d %q %s, want 403 ClientCertificateRevoked", code, reason, body)
	}
	var msg struct{ Error, Detail string }
	if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.Error != "ClientCertificateRevoked" {
		t.Errorf("got body %s (%v), want the JSON error", body, err)
	}
	tr.CloseIdleConnections()
}
