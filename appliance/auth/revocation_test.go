package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// crlServer is a real HTTP server publishing one CRL, with ETag support.
type crlServer struct {
	*httptest.Server
	mu          sync.Mutex
	data        []byte
	version     int
	status      int // when not 0, answered instead of the CRL
	hits        atomic.Int64
	conditional atomic.Int64
}

func newCRLServer(t *testing.T, data []byte) *crlServer {
	s := &crlServer{data: data, version: 1}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *crlServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	data, status, etag := s.data, s.status, fmt.Sprintf(`"v%d"`, s.version)
	s.mu.Unlock()
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	if r.Header.Get("If-None-Match") != "" {
		s.conditional.Add(1)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(data)
}

func (s *crlServer) publish(data []byte) {
	s.mu.Lock()
	s.data, s.status = data, 0
	s.version++
	s.mu.Unlock()
}

func (s *crlServer) fail(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

// revocationSetup is a root CA whose leaves name a CRL distribution point on a
// real HTTP server, and an Authenticator checking them.
type revocationSetup struct {
	root  *testCA
	srv   *crlServer
	dp    string
	clock *fakeClock
	dir   string
}

func newRevocationSetup(t *testing.T, crl func(root *testCA) []byte) *revocationSetup {
	s := &revocationSetup{root: newRootCA(t, "Test Root"), clock: newClock(), dir: t.TempDir()}
	var data []byte
	if crl != nil {
		data = crl(s.root)
	}
	s.srv = newCRLServer(t, data)
	s.dp = s.srv.URL + "/root.crl"
	return s
}

func (s *revocationSetup) config(t *testing.T, mutate func(*Config)) Config {
	cfg := DefaultConfig()
	cfg.Certificates.Roots = []string{writeCerts(t, s.dir, "roots.pem", s.root.cert)}
	cfg.Revocation.Enabled = true
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

func (s *revocationSetup) auth(t *testing.T, mutate func(*Config), m *Metrics) *Authenticator {
	t.Helper()
	a, err := New(s.config(t, mutate), &Options{Now: s.clock.Now, Metrics: m, HTTPClient: s.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func certRequest(chain ...*x509.Certificate) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://gw.example/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut?MPLIST", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: chain}
	return r
}

// wantReason checks that err carries reason (or is nil when reason is "").
func wantReason(t *testing.T, err error, reason httperror.Reason) {
	t.Helper()
	got, _ := httperror.ReasonOf(err)
	if got != reason {
		t.Fatalf("got reason %q (%v), want %q", got, err, reason)
	}
}

func TestRevocationDistributionPoint(t *testing.T) {
	var revoked *x509.Certificate
	s := newRevocationSetup(t, nil)
	good := s.root.leaf(t, "good-device", s.dp)
	revoked = s.root.leaf(t, "revoked-device", s.dp)
	s.srv.publish(s.root.crl(t, 1, t0.Add(-time.Minute), 24*time.Hour, revoked.SerialNumber))
	a := s.auth(t, nil, nil)
	tests := []struct {
		name string
		leaf *x509.Certificate
		want httperror.Reason
	}{
		{"not revoked", good, ""},
		{"revoked", revoked, httperror.ClientCertificateRevoked},
		{"not revoked again", good, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.Authenticate(certRequest(tt.leaf), Mutual)
			wantReason(t, err, tt.want)
			if tt.want == "" && id.Device != tt.leaf.Subject.CommonName {
				t.Errorf("got device %q, want %q", id.Device, tt.leaf.Subject.CommonName)
			}
		})
	}
	if got := s.srv.hits.Load(); got != 1 {
		t.Errorf("got %d CRL fetches, want 1 (cached)", got)
	}
}

func TestRevocationRefreshedAfterNextUpdate(t *testing.T) {
	tests := []struct {
		name    string
		refresh bool // the background refresh runs; otherwise the request path refetches
	}{
		{"background refresh", true},
		{"request path", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRevocationSetup(t, func(root *testCA) []byte { return root.crl(t, 1, t0, time.Hour) })
			leaf := s.root.leaf(t, "device", s.dp)
			a := s.auth(t, nil, nil)
			if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
				t.Fatalf("before revocation: %v", err)
			}
			s.srv.publish(s.root.crl(t, 2, t0.Add(time.Hour), time.Hour, leaf.SerialNumber))
			s.clock.Advance(30 * time.Minute)
			if err := a.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := s.srv.hits.Load(); got != 1 {
				t.Fatalf("got %d fetches half way through the CRL's validity, want 1", got)
			}
			s.clock.Advance(31 * time.Minute) // past nextUpdate
			if tt.refresh {
				if err := a.Refresh(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			_, err := a.Authenticate(certRequest(leaf), Mutual)
			wantReason(t, err, httperror.ClientCertificateRevoked)
			if got := s.srv.hits.Load(); got != 2 {
				t.Errorf("got %d fetches, want 2", got)
			}
		})
	}
}

func TestRevocationRefreshedBeforeNextUpdate(t *testing.T) {
	s := newRevocationSetup(t, func(root *testCA) []byte { return root.crl(t, 1, t0, 10*time.Hour) })
	leaf := s.root.leaf(t, "device", s.dp)
	a := s.auth(t, func(c *Config) { c.Revocation.RefreshInterval = 24 * time.Hour }, nil)
	if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
		t.Fatal(err)
	}
	s.srv.publish(s.root.crl(t, 2, t0.Add(9*time.Hour), 10*time.Hour, leaf.SerialNumber))
	s.clock.Advance(9*time.Hour + time.Minute) // a tenth of the validity before nextUpdate
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := a.Authenticate(certRequest(leaf), Mutual)
	wantReason(t, err, httperror.ClientCertificateRevoked)
}

func TestRevocationUnavailable(t *testing.T) {
	root := newRootCA(t, "Test Root")
	impostor := newRootCA(t, "Test Root") // same name, another key
	tests := []struct {
		name   string
		crl    func() []byte
		status int // the CRL server's answer when not 0
		noDP   bool
		stale  bool // the CRL served has expired
	}{
		{"server error", nil, http.StatusInternalServerError, false, false},
		{"not found", nil, http.StatusNotFound, false, false},
		{"signed by another key", func() []byte { return impostor.crl(t, 1, t0, time.Hour) }, 0, false, false},
		{"issued by another CA", func() []byte { return newRootCA(t, "Other").crl(t, 1, t0, time.Hour) }, 0, false, false},
		{"stale", func() []byte { return root.crl(t, 1, t0.Add(-2*time.Hour), time.Hour) }, 0, false, true},
		{"not a CRL", func() []byte { return []byte("<html>captive portal</html>") }, 0, false, false},
		{"too large", func() []byte { return make([]byte, 2048) }, 0, false, false},
		{"no distribution point", nil, 0, true, false},
	}
	for _, tt := range tests {
		for _, rule := range []string{FailClosed, FailOpen} {
			t.Run(tt.name+"/"+rule, func(t *testing.T) {
				s := &revocationSetup{root: root, clock: newClock(), dir: t.TempDir()}
				var data []byte
				if tt.crl != nil {
					data = tt.crl()
				}
				s.srv = newCRLServer(t, data)
				s.srv.fail(tt.status)
				s.dp = s.srv.URL + "/root.crl"
				var leaf *x509.Certificate
				if tt.noDP {
					leaf = root.leaf(t, "device")
				} else {
					leaf = root.leaf(t, "device", s.dp)
				}
				a := s.auth(t, func(c *Config) {
					c.Revocation.OnUnavailable = rule
					c.Revocation.MaxSizeBytes = 1024
				}, nil)
				_, err := a.Authenticate(certRequest(leaf), Mutual)
				if rule == FailOpen {
					wantReason(t, err, "")
					return
				}
				wantReason(t, err, httperror.ClientCertificateRequired)
				if !errors.Is(err, errRevocationUnavailable) {
					t.Errorf("got %v, want it to wrap errRevocationUnavailable", err)
				}
				if e := httperror.As(err, ""); !strings.Contains(e.Detail, "revocation status") {
					t.Errorf("got detail %q, want it to name the revocation status", e.Detail)
				}
			})
		}
	}
}

func TestRevocationRetryIsRateLimited(t *testing.T) {
	s := newRevocationSetup(t, nil)
	s.srv.fail(http.StatusServiceUnavailable)
	leaf := s.root.leaf(t, "device", s.dp)
	a := s.auth(t, func(c *Config) { c.Revocation.RetryInterval = time.Minute }, nil)
	for range 20 {
		_, err := a.Authenticate(certRequest(leaf), Mutual)
		wantReason(t, err, httperror.ClientCertificateRequired)
	}
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatalf("got %v from a refresh that is not due, want nil", err)
	}
	if got := s.srv.hits.Load(); got != 1 {
		t.Fatalf("got %d fetches for 20 requests, want 1", got)
	}
	s.srv.publish(s.root.crl(t, 1, t0, 24*time.Hour))
	s.clock.Advance(time.Minute)
	if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
		t.Fatalf("after the server came back: %v", err)
	}
	if got := s.srv.hits.Load(); got != 2 {
		t.Errorf("got %d fetches, want 2", got)
	}
}

func TestRevocationConditionalRefresh(t *testing.T) {
	s := newRevocationSetup(t, func(root *testCA) []byte { return root.crl(t, 1, t0, 24*time.Hour) })
	leaf := s.root.leaf(t, "device", s.dp)
	a := s.auth(t, nil, nil) // refresh_interval 1h
	if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(time.Hour)
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, cond := s.srv.hits.Load(), s.srv.conditional.Load(); got != 2 || cond != 1 {
		t.Fatalf("got %d fetches, %d conditional, want 2 and 1", got, cond)
	}
	if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
		t.Fatalf("after a 304: %v", err)
	}
}

func TestRevocationFile(t *testing.T) {
	s := newRevocationSetup(t, nil)
	leaf := s.root.leaf(t, "device", s.dp)
	other := s.root.leaf(t, "other-device", s.dp)
	crlFile := writeFile(t, s.dir, "root.crl", pemCRL(s.root.crl(t, 1, t0, 24*time.Hour, other.SerialNumber)))
	a := s.auth(t, func(c *Config) { c.Revocation.Files = []string{crlFile} }, nil)
	if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
		t.Fatal(err)
	}
	_, err := a.Authenticate(certRequest(other), Mutual)
	wantReason(t, err, httperror.ClientCertificateRevoked)

	// The operator revokes leaf: a new CRL file (DER this time) replaces the old.
	writeFile(t, s.dir, "root.crl", s.root.crl(t, 2, t0, 24*time.Hour, other.SerialNumber, leaf.SerialNumber, big.NewInt(7)))
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(certRequest(leaf), Mutual)
	wantReason(t, err, httperror.ClientCertificateRevoked)

	// A broken replacement keeps the last good CRL.
	writeFile(t, s.dir, "root.crl", []byte("garbage"))
	if err := a.Refresh(context.Background()); err == nil {
		t.Error("got no error reloading a broken CRL file")
	}
	_, err = a.Authenticate(certRequest(leaf), Mutual)
	wantReason(t, err, httperror.ClientCertificateRevoked)
	if got := s.srv.hits.Load(); got != 0 {
		t.Errorf("got %d fetches of the distribution point, want 0 (the file covers the issuer)", got)
	}
}

func TestRevocationIntermediate(t *testing.T) {
	s := newRevocationSetup(t, nil)
	interSrv := newCRLServer(t, nil)
	inter := s.root.intermediate(t, "Test Issuing CA", s.dp)
	leaf := inter.leaf(t, "device", interSrv.URL+"/inter.crl")
	interSrv.publish(inter.crl(t, 1, t0, 24*time.Hour))
	s.srv.publish(s.root.crl(t, 1, t0, 24*time.Hour))
	a := s.auth(t, func(c *Config) {
		c.Certificates.Intermediates = []string{writeCerts(t, s.dir, "inter.pem", inter.cert)}
	}, nil)
	if _, err := a.Authenticate(certRequest(leaf), Mutual); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	s.srv.publish(s.root.crl(t, 2, t0.Add(time.Minute), 24*time.Hour, inter.cert.SerialNumber))
	s.clock.Advance(time.Hour)
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := a.Authenticate(certRequest(leaf), Mutual)
	wantReason(t, err, httperror.ClientCertificateRevoked)
	if e := httperror.As(err, ""); !strings.Contains(e.Detail, "CA certificate") {
		t.Errorf("got detail %q, want it to name the CA certificate", e.Detail)
	}
}

func TestRevocationMetrics(t *testing.T) {
	s := newRevocationSetup(t, nil)
	leaf := s.root.leaf(t, "device", s.dp)
	revoked := s.root.leaf(t, "revoked", s.dp)
	s.srv.publish(s.root.crl(t, 1, t0, 24*time.Hour, revoked.SerialNumber))
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	a := s.auth(t, nil, m)
	_, _ = a.Authenticate(certRequest(leaf), Mutual)
	_, _ = a.Authenticate(certRequest(revoked), Mutual)
	if got := testutil.ToFloat64(m.crlLastSuccess); got != float64(t0.Unix()) {
		t.Errorf("got last success %v, want %v", got, t0.Unix())
	}
	s.srv.fail(http.StatusBadGateway)
	s.clock.Advance(2 * time.Hour)
	if err := a.Refresh(context.Background()); err == nil {
		t.Error("got no error from a failing refresh")
	}
	_, _ = a.Authenticate(certRequest(leaf), Mutual) // within RetryInterval: no new fetch
	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"failures", m.crlFailures, 1},
		{"last success unchanged", m.crlLastSuccess, float64(t0.Unix())},
		{"certificate success", m.auth.WithLabelValues("certificate", "success"), 2},
		{"certificate revoked", m.auth.WithLabelValues("certificate", "revoked"), 1},
		{"certificate unavailable", m.auth.WithLabelValues("certificate", "revocation_unavailable"), 0},
	}
	for _, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	for name, want := range map[string]int{
		"cmg_gateway_auth_total":                 10,
		"cmg_crl_last_success_timestamp_seconds": 1,
		"cmg_crl_failures_total":                 1,
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("got %d series of %s (%v), want %d", n, name, err, want)
		}
	}
}
