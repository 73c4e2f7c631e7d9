package gateway

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/logging"
	"github.com/cmg-gateway/cmg/policies"
	"github.com/cmg-gateway/cmg/tunnel"
)

// benchRequest is a device's policy request as a ConfigMgr client sends it.
func benchRequest() *http.Request {
	r := httptest.NewRequest("GET", "https://cmg.example/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_pol?{7fd8e0e8}.SHA256:ABC", nil)
	r.RemoteAddr = "203.0.113.7:50123"
	r.Header.Set("User-Agent", "ccmhttp")
	r.Header.Set("Accept", "*/*")
	r.Header.Set("CCMClientID", "GUID:5B9F0C77-3D0E-4E2B-9A8E-1C2D3E4F5A6B")
	r.Header.Set("CCMClientIDSignature", "3A1B2C3D4E5F60718293A4B5C6D7E8F9")
	r.Header.Set("CCMClientTimestamp", "2026-11-25T10:00:00Z")
	r.Header.Set("CCMClientTimestampSignature", "0F1E2D3C4B5A69788796A5B4C3D2E1F0")
	r.Header.Set("Range", "bytes=0-")
	return r
}

// BenchmarkWriteRequestHeader is the request header rewrite for the connector.
func BenchmarkWriteRequestHeader(b *testing.B) {
	x := &exchange{r: benchRequest(), id: "6f0fa2f3dc1866e8", ident: &auth.Identity{Method: auth.Certificate,
		Device: "ws042", Subject: "CN=ws042,O=cmg dev devices", Issuer: "CN=cmg dev device issuing CA,O=cmg dev"}}
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.ReportAllocs()
	for b.Loop() {
		writeRequestHeader(bw, x, 0)
		bw.Flush()
	}
}

// BenchmarkRecord is what every request pays at its end: the request metrics,
// byte counters, the egress budget and the access log line (info, through the
// batched logger into io.Discard).
func BenchmarkRecord(b *testing.B) {
	m, err := newRequestMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	eng, err := policies.NewEngine(policies.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	log, flush := logging.New(io.Discard, "info")
	defer flush()
	g := &Gateway{m: m, pol: eng, log: log, now: time.Now, httpEgress: true}
	key := []byte("0123456789abcdef0123456789abcdef")
	g.obs.hashers.New = func() any { return hmac.New(sha256.New, key) }
	r := benchRequest().WithContext(context.Background())
	role := &allowedRole{ID: "72057594037927939", Kind: tunnel.ManagementPoint, Site: "site1", kindIdx: 0}
	id := &auth.Identity{Method: auth.Certificate, Device: "ws042"}
	w := &responseWriter{ResponseWriter: httptest.NewRecorder(), status: 200, wroteHeader: true, headerBytes: 180, bodyBytes: 4096}
	b.ReportAllocs()
	for b.Loop() {
		x := exchange{w: w, r: r, id: "6f0fa2f3dc1866e8", start: time.Now(), role: role, ident: id, connector: "cp1", attempts: 1}
		g.record(&x)
	}
}
