package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// Helpers of the device identity tests: bearer-token curls, the simulated
// site's counters, a real OIDC issuer (a JWKS served over HTTPS), test CAs.

const (
	mpServerPrefix = "/CCM_Proxy_ServerAuth/" + demo.MPRoleID
	supPrefix      = "/CCM_Proxy_MutualAuth/" + demo.SUPRoleID
)

// curlToken runs curl with a bearer token and no client certificate.
func (e *env) curlToken(token, url string, args ...string) curlResult {
	e.t.Helper()
	return e.curl(false, url, append([]string{"-H", "Authorization: Bearer " + token}, args...)...)
}

// rolesStats reads the simulated site's counters.
func (e *env) rolesStats() roles.Stats {
	e.t.Helper()
	var st roles.Stats
	getJSON(e.t, "http://"+e.m.Roles.Listen+"/roles/stats", &st)
	return st
}

// cmgRun runs the built cmg binary and returns its standard output.
func cmgRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(cmgBinary, args...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cmg %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(string(out))
}

// issueSiteToken issues a site token with `cmg token issue` and the demo site key.
func issueSiteToken(t *testing.T, m *demo.Manifest, args ...string) string {
	t.Helper()
	return cmgRun(t, append([]string{"token", "issue", "-key", m.SiteKeyFile, "-site", m.SiteCode}, args...)...)
}

// writeFile writes a test file and returns its path.
func writeTestFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA is a CA made by a test, with its key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t *testing.T, subject pkix.Name, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	pc, pk := tmpl, crypto.Signer(key)
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// leaf issues a leaf certificate; client makes it a client certificate,
// otherwise a server certificate for hosts. It returns the PEM files of the
// chain (leaf then ca, when ca is not a root) and the key.
func (ca *testCA) leaf(t *testing.T, dir, name string, subject pkix.Name, client bool, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if ca.cert.Subject.String() != ca.cert.Issuer.String() {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile = writeTestFile(t, dir, name+".pem", string(chain))
	keyFile = writeTestFile(t, dir, name+"-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

func (ca *testCA) pemFile(t *testing.T, dir, name string) string {
	t.Helper()
	return writeTestFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})))
}

// oidcIssuer is a real OIDC token issuer as far as the gateway can tell: RSA
// signing keys published as a JWKS over HTTPS (a certificate of its own CA,
// caFile), which the test can rotate.
type oidcIssuer struct {
	t       *testing.T
	url     string // the JWKS URL
	caFile  string
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	fetches int
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	o := &oidcIssuer{t: t, keys: map[string]*rsa.PrivateKey{}}
	dir := t.TempDir()
	ca := newTestCA(t, pkix.Name{CommonName: "Test Issuer Web CA"}, nil)
	o.caFile = ca.pemFile(t, dir, "issuer-ca.pem")
	certFile, keyFile := ca.leaf(t, dir, "jwks", pkix.Name{CommonName: "127.0.0.1"}, false, "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(o.serveJWKS), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	o.url = "https://" + ln.Addr().String() + "/discovery/v2.0/keys"
	return o
}

// oidcConfig points a gateway at the issuer: Azure AD's multi-tenant issuer,
// the test audience, the given tenants.
func (o *oidcIssuer) oidcConfig(c *gateway.Config, tenants ...string) {
	oc := &c.Auth.Tokens.OIDC
	oc.Issuers = []string{issuerFormat}
	oc.Audiences = []string{testAudience}
	oc.Tenants = tenants
	oc.JWKSURL = o.url
	oc.CAFiles = []string{o.caFile}
	oc.MinRefreshInterval = 100 * time.Millisecond
}

func (o *oidcIssuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fetches++
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	for kid, k := range o.keys {
		set.Keys = append(set.Keys, jwk{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: kid,
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// addKey publishes a new signing key and returns its kid.
func (o *oidcIssuer) addKey(kid string) {
	o.t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		o.t.Fatal(err)
	}
	o.mu.Lock()
	o.keys[kid] = k
	o.mu.Unlock()
}

// removeKey stops publishing kid, keeping the key to sign with.
func (o *oidcIssuer) removeKey(kid string) *rsa.PrivateKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := o.keys[kid]
	delete(o.keys, kid)
	return k
}

func (o *oidcIssuer) key(kid string) *rsa.PrivateKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys[kid]
}

// The Azure AD shape of the test tokens.
const (
	testTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47" // policies/examples/azure-ad-devices.yaml
	otherTenant  = "9188040d-6c67-4c5b-b112-36a304b66dad"
	testAudience = "api://cmg-gateway"
	issuerFormat = "https://login.microsoftonline.com/{tenant}/v2.0"
)

func azureIssuer(tenant string) string { return strings.ReplaceAll(issuerFormat, "{tenant}", tenant) }

// azureClaims are the claims of a valid Azure AD device token of the test tenant.
func azureClaims(device string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": azureIssuer(testTenant), "aud": testAudience, "tid": testTenant,
		"sub": "user-" + device, "deviceid": device,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// sign signs claims with RS256 and the key kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedToken is an "alg: none" token.
func unsignedToken(kid string, claims jwt.MapClaims) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "."
}
