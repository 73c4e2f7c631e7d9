package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/pki"
)

// TestACMEWithPebble: the gateway obtains its server certificate from a real
// ACME CA (Pebble, with pebble-challtestsrv as its DNS), solving the
// challenge on its own listeners, and curl verifies the served certificate
// against Pebble's root.
func TestACMEWithPebble(t *testing.T) {
	for _, challenge := range []string{gateway.ChallengeHTTP01, gateway.ChallengeTLSALPN01} {
		t.Run(challenge, func(t *testing.T) { testACME(t, challenge) })
	}
}

const acmeDomain = "proxy.test"

func testACME(t *testing.T, challenge string) {
	clientPort, httpPort := freePort(t), freePort(t)
	pb := startPebble(t, httpPort, clientPort)
	storage := t.TempDir()
	e := newEnv(t, envOptions{connectors: 1, gateway: func(i int, c *gateway.Config) {
		if i != 0 {
			return
		}
		pd := pki.Dir(filepath.Dir(c.Client.CertFile))
		// Connectors keep verifying the tunnel against the dev PKI.
		c.Tunnel.CertFile, c.Tunnel.KeyFile = pd.Path(pki.GatewayCert), pd.Path(pki.GatewayKey)
		c.Client.CertFile, c.Client.KeyFile = "", ""
		c.Client.Listen = "127.0.0.1:" + strconv.Itoa(clientPort)
		c.Client.ACME = gateway.ACMEConfig{
			Domains:    []string{acmeDomain},
			CA:         pb.directory,
			CARoots:    []string{pb.webCAFile},
			Email:      "ops@proxy.test",
			AcceptTOS:  true,
			Storage:    storage,
			Challenge:  challenge,
			HTTPListen: "127.0.0.1:" + strconv.Itoa(httpPort),
		}
	}})
	addr := "127.0.0.1:" + strconv.Itoa(clientPort)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pb.root(t))
	waitFor(t, "the gateway to serve a certificate of Pebble", 60*time.Second, func() bool {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: acmeDomain, RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	rootFile := writeTestFile(t, t.TempDir(), "pebble-root.pem", string(pb.root(t)))
	url := fmt.Sprintf("https://%s:%d%s/cmg-echo", acmeDomain, clientPort, mpPrefix)
	out, err := exec.Command("curl", "-sS", "--fail-with-body", "--resolve", fmt.Sprintf("%s:%d:127.0.0.1", acmeDomain, clientPort),
		"--cacert", rootFile, "--cert", e.m.ClientCertFile, "--key", e.m.ClientKeyFile, url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl verifying against Pebble's root: %v\n%s", err, out)
	}
	var got echo
	if err := json.Unmarshal(out, &got); err != nil || got.header(gateway.HeaderDeviceID) != "device-0001" {
		t.Errorf("curl got %s (%v), want the echo of the device's request", out, err)
	}
	files, _ := filepath.Glob(filepath.Join(storage, "certificates", "*", acmeDomain, acmeDomain+".crt"))
	if len(files) != 1 {
		t.Errorf("found %v in the ACME storage, want the certificate of %s on disk", files, acmeDomain)
	}
	fams := scrape(t, e.gws[0].admin)
	if exp := metricValue(fams, "cmg_cert_expiry_timestamp_seconds", "cert", "served"); exp < float64(time.Now().Unix()) {
		t.Errorf("cmg_cert_expiry_timestamp_seconds{cert=served} = %v, want the ACME certificate's expiry", exp)
	}

	if challenge == gateway.ChallengeHTTP01 {
		// The HTTP-01 listener sends everything else to https.
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/CCM_Proxy_MutualAuth/x?y=1", httpPort))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := fmt.Sprintf("https://127.0.0.1:%d/CCM_Proxy_MutualAuth/x?y=1", clientPort)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("plain HTTP: got %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// pebble is a running Pebble ACME server.
type pebble struct {
	directory  string
	management string
	webCAFile  string // the CA of Pebble's own HTTPS certificate
	client     *http.Client
}

// startPebble runs pebble-challtestsrv (as Pebble's DNS server: every name is
// 127.0.0.1) and Pebble, validating HTTP-01 on httpPort and TLS-ALPN-01 on
// tlsPort of 127.0.0.1.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (scripts/install-test-deps installs the Debian package pebble): %v", bin, err)
		}
	}
	dir := t.TempDir()
	ca := newTestCA(t, pkix.Name{CommonName: "Pebble web CA"}, nil)
	webCA := ca.pemFile(t, dir, "web-ca.pem")
	cert, key := ca.leaf(t, dir, "pebble", pkix.Name{CommonName: "127.0.0.1"}, false, "127.0.0.1", "localhost")
	dnsPort, listenPort, mgmtPort, chalMgmt := freeUDPPort(t), freePort(t), freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", listenPort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    cert,
		"privateKey":                     key,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	data, _ := json.Marshal(cfg)
	cfgFile := writeTestFile(t, dir, "pebble.json", string(data))

	startDaemon(t, dir, "pebble-challtestsrv", nil, "-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-management", fmt.Sprintf("127.0.0.1:%d", chalMgmt),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	startDaemon(t, dir, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	p := &pebble{
		directory:  fmt.Sprintf("https://127.0.0.1:%d/dir", listenPort),
		management: fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
		webCAFile:  webCA,
		client:     &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 5 * time.Second},
	}
	waitFor(t, "pebble's directory", 15*time.Second, func() bool {
		resp, err := p.client.Get(p.directory)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// root is Pebble's issuing root (it makes a new one at each start).
func (p *pebble) root(t *testing.T) []byte {
	t.Helper()
	resp, err := p.client.Get(p.management + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pebble root: %d %v", resp.StatusCode, err)
	}
	return b
}

// startDaemon runs a helper server until the test ends, its output in dir.
func startDaemon(t *testing.T, dir, bin string, env []string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, bin+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			printTail(t, bin, logf.Name(), 20)
		}
	})
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
