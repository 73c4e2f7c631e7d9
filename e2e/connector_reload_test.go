package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/pki"
)

// TestConnectorSIGHUPReloadsCertificate: a connector given SIGHUP keeps running
// (systemctl reload), and its next tunnel presents the renewed certificate.
func TestConnectorSIGHUPReloadsCertificate(t *testing.T) {
	e := newProcEnv(t)
	gws, conns := e.startAll()
	pd := pki.Dir(e.m.PKIDir)
	before := certFingerprint(t, pd.Path(pki.ConnectorCert("cp1")))
	// Issued as of an hour ahead, so its expiry differs from the old one's.
	if err := pki.IssueConnector(pd, e.m.Site, "cp1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	after := certFingerprint(t, pd.Path(pki.ConnectorCert("cp1")))
	if before == after {
		t.Fatal("re-issuing did not change the certificate")
	}
	if err := conns[0].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload to be logged", 10*time.Second, func() bool {
		b, _ := os.ReadFile(conns[0].log)
		return strings.Contains(string(b), "connector: certificate reloaded")
	})
	select {
	case <-conns[0].exited:
		t.Fatal("the connector exited on SIGHUP")
	default:
	}
	// Restart gateway 0: cp1's new tunnel must present the new certificate.
	gws[0].kill(syscall.SIGKILL)
	gws[0].restart()
	g := e.m.Gateways[0]
	waitFor(t, "cp1 back on gateway 0", 15*time.Second, func() bool {
		st, ok := tryStatus(g.AdminURL)
		return ok && st.has("cp1")
	})
	fams := scrape(t, g.AdminURL)
	got := metricValue(fams, "cmg_cert_expiry_timestamp_seconds", "cert", "connector/cp1")
	cert := readCert(t, pd.Path(pki.ConnectorCert("cp1")))
	if int64(got) != cert.NotAfter.Unix() {
		t.Errorf("gateway sees cp1's certificate expiring at %v, want the renewed one's %v", int64(got), cert.NotAfter.Unix())
	}
}

func certFingerprint(t *testing.T, file string) string {
	c := readCert(t, file)
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
