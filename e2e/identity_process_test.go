package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/pki"
)

// Reloads and revocation against the built binary (separate processes, no
// race detector), where the timing figures mean something.

// download is a long curl download through a gateway (curl's own rate limit
// makes it last), checked for size and content when it ends.
type download struct {
	cmd  *exec.Cmd
	done chan error
	sum  string
	n    int64
}

func startDownload(t *testing.T, caFile, certFile, keyFile, url string, size int64, seed uint64, rate string) *download {
	t.Helper()
	d := &download{done: make(chan error, 1)}
	d.cmd = exec.Command("curl", "-sS", "--http1.1", "--fail", "--limit-rate", rate, "--cacert", caFile, "--cert", certFile, "--key", keyFile,
		fmt.Sprintf("%s?size=%d&seed=%d", url, size, seed))
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	d.cmd.Stderr = &errb
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		h := sha256.New()
		d.n, _ = io.Copy(h, out)
		d.sum = hex.EncodeToString(h.Sum(nil))
		err := d.cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, errb.String())
		}
		d.done <- err
	}()
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	return d
}

// wait checks that the download completed whole.
func (d *download) wait(t *testing.T, size int64, seed uint64) {
	t.Helper()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("download: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("download did not end")
	}
	h := sha256.New()
	_, _ = io.Copy(h, roles.NewBlobReader(seed, size))
	if d.n != size || d.sum != hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("downloaded %d bytes (sha256 %s), want %d identical bytes", d.n, d.sum, size)
	}
}

// inFlight waits until the gateway at adminURL has a request in flight.
func waitInFlight(t *testing.T, adminURL string) {
	t.Helper()
	waitFor(t, "a request in flight", 15*time.Second, func() bool {
		return metricValue(scrape(t, adminURL), "cmg_gateway_requests_in_flight") >= 1
	})
}

func waitReloads(t *testing.T, adminURL, what, result string, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v %s reload(s) with result %s", n, what, result), 15*time.Second, func() bool {
		return metricValue(scrape(t, adminURL), "cmg_config_reloads_total", "what", what, "result", result) >= n
	})
}

// TestPolicyReloadOnSIGHUP: an edited policy and SIGHUP change the decision for
// new requests while a long download in flight finishes; a broken policy is
// rejected, logged and counted, and the policy in force stays.
func TestPolicyReloadOnSIGHUP(t *testing.T) {
	e := newProcEnv(t)
	gws, _ := e.startAll()
	g := e.m.Gateways[0]
	url := g.ClientURL + mpPrefix + "/cmg-echo"
	curl := func() curlResult { return (&env{t: t, m: e.m}).curl(true, url) }
	if res := curl(); res.status != 200 {
		t.Fatalf("before the edit: got %d, want 200", res.status)
	}

	const size, seed = 12 << 20, 3
	dl := startDownload(t, e.m.CAFile, e.m.ClientCertFile, e.m.ClientKeyFile, g.ClientURL+mpPrefix+"/cmg-blob", size, seed, "3M")
	waitInFlight(t, g.AdminURL)

	old, err := os.ReadFile(e.m.PolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Certificate devices may no longer reach the management point.
	edited := strings.Replace(string(old), "  - name: pki-devices\n", `  - name: pki-devices-blocked
    match:
      auth: certificate
      role: management_point
    action: deny

  - name: pki-devices
`, 1)
	if edited == string(old) {
		t.Fatal("the demo policy has no pki-devices rule to edit")
	}
	writeTestFile(t, e.m.Dir, "policy.yaml", edited)
	start := time.Now()
	if err := gws[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitReloads(t, g.AdminURL, "policy", "success", 1)
	res := curl()
	if res.status != 403 || res.header.Get("CMG-Error") != "PolicyDenied" || !strings.Contains(string(res.body), "pki-devices-blocked") {
		t.Fatalf("after the reload: got %d %s, want 403 PolicyDenied by pki-devices-blocked", res.status, res.body)
	}
	t.Logf("policy reload effective %v after SIGHUP", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-dl.done:
		t.Fatalf("the download ended (%v) before the reload was checked; slow it down", err)
	default:
	}
	dl.wait(t, size, seed)

	// A broken file: rejected, counted, and the edited policy stays in force.
	writeTestFile(t, e.m.Dir, "policy.yaml", "version: 1\ndefault: perhaps\n")
	_ = gws[0].cmd.Process.Signal(syscall.SIGHUP)
	waitReloads(t, g.AdminURL, "policy", "failure", 1)
	if res := curl(); res.status != 403 || !strings.Contains(string(res.body), "pki-devices-blocked") {
		t.Errorf("after a broken policy: got %d %s, want the previous policy's 403", res.status, res.body)
	}
	// The other instance was not signalled and still has the old policy.
	if res := (&env{t: t, m: e.m}).curl(true, e.m.Gateways[1].ClientURL+mpPrefix+"/cmg-echo"); res.status != 200 {
		t.Errorf("instance 1: got %d, want 200", res.status)
	}
	data, _ := os.ReadFile(gws[0].log)
	if !strings.Contains(string(data), "policy reload failed") || !strings.Contains(string(data), "perhaps") {
		t.Errorf("the gateway log does not report the rejected policy and its problem")
	}
}

// TestRevokedCertificateWithoutRestart: `cmg pki revoke` rewrites the device
// CRL; within one CRL refresh the gateway answers 403
// ClientCertificateRevoked, on new and on kept-alive connections, with no
// restart and no signal, while other devices go on.
func TestRevokedCertificateWithoutRestart(t *testing.T) {
	e := newProcEnv(t)
	gws, _ := e.startAll()
	g := e.m.Gateways[0]
	pd := pki.Dir(e.m.PKIDir)
	cmgRun(t, "pki", "issue", "-dir", e.m.PKIDir, "-kind", "client", "-name", "device-0002")
	cert, key := pd.Path(pki.ClientCert("device-0002")), pd.Path(pki.ClientKey("device-0002"))
	url := g.ClientURL + mpPrefix + "/cmg-echo"
	ev := &env{t: t, m: e.m}
	victim := func() curlResult { return ev.curl(false, url, "--cert", cert, "--key", key) }
	if res := victim(); res.status != 200 {
		t.Fatalf("before revocation: got %d %s, want 200", res.status, res.body)
	}
	keep := keepAliveClient(t, e.m.CAFile, cert, key)
	if code, _ := keep.get(t, url); code != 200 {
		t.Fatalf("keep-alive connection: got %d, want 200", code)
	}

	cmgRun(t, "pki", "revoke", "-dir", e.m.PKIDir, "-cert", cert)
	start := time.Now()
	var res curlResult
	waitFor(t, "403 ClientCertificateRevoked", 30*time.Second, func() bool {
		res = victim()
		return res.status == 403
	})
	took := time.Since(start)
	if res.header.Get("CMG-Error") != "ClientCertificateRevoked" {
		t.Fatalf("got %d %q, want 403 ClientCertificateRevoked", res.status, res.header.Get("CMG-Error"))
	}
	// The CRL files are checked every 10 s (appliance/auth refreshTick); the
	// margin covers the check itself and the polling curl.
	if took > 13*time.Second {
		t.Errorf("revocation took %v to apply, want within one CRL check (10s)", took)
	}
	t.Logf("revocation applied %v after cmg pki revoke", took.Round(time.Millisecond))
	code, reused := keep.get(t, url)
	if code != 403 || !reused {
		t.Errorf("kept-alive connection after revocation: got %d (reused %v), want 403 on the same connection", code, reused)
	}
	if res := ev.curl(true, url); res.status != 200 {
		t.Errorf("another device: got %d, want 200", res.status)
	}
	select {
	case <-gws[0].exited:
		t.Fatal("the gateway exited")
	default:
	}
	if got := metricValue(scrape(t, g.AdminURL), "cmg_gateway_auth_total", "method", "certificate", "result", "revoked"); got < 1 {
		t.Errorf("cmg_gateway_auth_total{method=certificate,result=revoked} = %v, want at least 1", got)
	}
}

// TestServerCertificateReloadOnSIGHUP: a renewed server certificate is served
// to new handshakes after SIGHUP, while a kept-alive connection and a long
// download that started before go on undisturbed.
func TestServerCertificateReloadOnSIGHUP(t *testing.T) {
	e := newProcEnv(t)
	gws, _ := e.startAll()
	g := e.m.Gateways[0]
	addr := strings.TrimPrefix(g.ClientURL, "https://")
	oldSerial := servedSerial(t, e.m.CAFile, addr)
	keep := keepAliveClient(t, e.m.CAFile, e.m.ClientCertFile, e.m.ClientKeyFile)
	url := g.ClientURL + mpPrefix + "/cmg-echo"
	if code, _ := keep.get(t, url); code != 200 {
		t.Fatalf("keep-alive connection: got %d", code)
	}
	const size, seed = 12 << 20, 5
	dl := startDownload(t, e.m.CAFile, e.m.ClientCertFile, e.m.ClientKeyFile, g.ClientURL+mpPrefix+"/cmg-blob", size, seed, "3M")
	waitInFlight(t, g.AdminURL)

	if err := pki.IssueServer(pki.Dir(e.m.PKIDir), []string{"localhost", "127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := gws[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitReloads(t, g.AdminURL, "certificate", "success", 1)
	if got := servedSerial(t, e.m.CAFile, addr); got == oldSerial {
		t.Errorf("a new handshake still gets the old certificate %s", got)
	}
	code, reused := keep.get(t, url)
	if code != 200 || !reused {
		t.Errorf("kept-alive connection after the reload: got %d (reused %v), want 200 on the same connection", code, reused)
	}
	select {
	case err := <-dl.done:
		t.Fatalf("the download ended (%v) before the reload was checked; slow it down", err)
	default:
	}
	dl.wait(t, size, seed)
}

// servedSerial is the serial of the certificate a new handshake gets.
func servedSerial(t *testing.T, caFile, addr string) string {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// keepAlive is a device client on one kept-alive connection.
type keepAlive struct{ c *http.Client }

func keepAliveClient(t *testing.T, caFile, certFile, keyFile string) *keepAlive {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	return &keepAlive{c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// get returns the status and whether the request went on a reused connection.
func (k *keepAlive) get(t *testing.T, url string) (int, bool) {
	t.Helper()
	var reused bool
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := k.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, reused
}
