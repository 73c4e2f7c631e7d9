package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/demo"
)

// Hostile devices at the client listener (SECURITY.md, "Devices"): each case
// sends raw bytes on a real TLS connection, because curl and Go's client
// normalize requests, and states the one answer the gateway must give.

// hostileBodyLimit is the management point's body limit in these tests.
const hostileBodyLimit = 1 << 20

func newHostileEnv(t *testing.T, edit func(c *gateway.Config)) *env {
	return newEnv(t, envOptions{connectors: 1, gateway: func(_ int, c *gateway.Config) {
		c.Backend.BodyLimits["management_point"] = configfile.Size(hostileBodyLimit)
		if edit != nil {
			edit(c)
		}
	}})
}

func TestHostileDeviceRequests(t *testing.T) {
	e := newHostileEnv(t, nil)
	addr := clientAddr(e.m, 0)
	withCert := deviceTLS(t, e.m, true)
	echoPath := mpPrefix + "/cmg-echo"
	get := func(path string, extra ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + strings.Join(extra, "") + "Connection: close\r\n\r\n"
	}
	big := strings.Repeat("a", 70<<10)

	type want struct {
		status int
		reason string // the contract error; "" for a relayed answer
	}
	tests := []struct {
		name string
		raw  string
		want []want
		// check inspects the role's view of a relayed answer (cmg-echo).
		check func(t *testing.T, got echo)
	}{
		// Smuggling. The gateway never relays a device's framing: each request
		// reaches the connector on its own stream with framing the gateway
		// wrote. Where net/http resolves an ambiguity the RFC allows (TE over
		// CL), the trailing bytes are one more request of the same device,
		// authenticated and routed like any other.
		{name: "CL.TE: Transfer-Encoding wins, Content-Length dropped, the tail is the device's next request",
			raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
				get("/CCM_Proxy_MutualAuth/12345/admin"),
			want: []want{{200, ""}, {404, "RouteNotFound"}},
			check: func(t *testing.T, got echo) {
				if got.BodyLen != 0 || got.header("Content-Length") != "" {
					t.Errorf("role saw a %d-byte body, Content-Length %q; want the chunked (empty) body and no Content-Length", got.BodyLen, got.header("Content-Length"))
				}
			}},
		{name: "TE.CL: the chunked body is the body, whatever Content-Length says",
			raw:  "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if got.BodyLen != 8 {
					t.Errorf("role saw a %d-byte body, want the 8 bytes of the chunk", got.BodyLen)
				}
			}},
		{name: "obfuscated Transfer-Encoding", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello",
			want: []want{{400, "BadRequest"}}},
		{name: "two Transfer-Encoding headers", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
			want: []want{{400, "BadRequest"}}},
		{name: "Transfer-Encoding list", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
			want: []want{{400, "BadRequest"}}},
		{name: "duplicate equal Content-Length is one", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if got.BodyLen != 5 {
					t.Errorf("role saw a %d-byte body, want 5", got.BodyLen)
				}
			}},
		{name: "conflicting Content-Length", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
			want: []want{{400, "BadRequest"}}},
		{name: "Content-Length list", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello",
			want: []want{{400, "BadRequest"}}},
		{name: "signed Content-Length", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
			want: []want{{400, "BadRequest"}}},
		{name: "obs-fold is unfolded into one line before forwarding (RFC 9112 5.2)",
			raw:  "GET " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if v := got.Headers["X-Folded"]; len(v) != 1 || v[0] != "a b" {
					t.Errorf("role saw X-Folded %q, want one line \"a b\"", v)
				}
			}},
		{name: "space before the colon", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nContent-Length : 5\r\n\r\nhello",
			want: []want{{400, "BadRequest"}}},
		{name: "bare CR inside a header value", raw: "GET " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nX-A: a\rX-B: b\r\n\r\n",
			want: []want{{400, "BadRequest"}}},
		{name: "NUL in a header value", raw: "GET " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n",
			want: []want{{400, "BadRequest"}}},
		{name: "bare LF line ends are read as CRLF and never forwarded",
			raw:  "GET " + echoPath + " HTTP/1.1\nHost: localhost\nX-Bare: lf\nConnection: close\n\n",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if got.header("X-Bare") != "lf" {
					t.Errorf("role saw X-Bare %q, want lf", got.header("X-Bare"))
				}
			}},
		{name: "HTTP/1.1 without Host", raw: "GET " + echoPath + " HTTP/1.1\r\n\r\n", want: []want{{400, "BadRequest"}}},
		{name: "two Host headers", raw: "GET " + echoPath + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", want: []want{{400, "BadRequest"}}},
		{name: "a later HTTP/1 minor version is served as HTTP/1.1", raw: "GET " + echoPath + " HTTP/1.7\r\nHost: localhost\r\n\r\n", want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if got.Method != "GET" {
					t.Errorf("role saw %q", got.Method)
				}
			}},
		{name: "HTTP/2.0 in a request line", raw: "GET " + echoPath + " HTTP/2.0\r\nHost: localhost\r\n\r\n", want: []want{{400, "BadRequest"}}},
		{name: "HTTP/0.9 style request", raw: "GET " + echoPath + "\r\n\r\n", want: []want{{400, "BadRequest"}}},
		{name: "Expect other than 100-continue", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
			want: []want{{400, "BadRequest"}}},

		// Sizes.
		{name: "oversized request line", raw: get(echoPath + "?q=" + big), want: []want{{413, "RequestTooLarge"}}},
		{name: "oversized header", raw: get(echoPath, "X-Big: "+big+"\r\n"), want: []want{{413, "RequestTooLarge"}}},
		{name: "many headers", raw: get(echoPath, strings.Repeat("X-Many: 0123456789abcdef0123456789abcdef\r\n", 2000)), want: []want{{413, "RequestTooLarge"}}},
		{name: "declared body over the role's limit", raw: fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", echoPath, hostileBodyLimit+1),
			want: []want{{413, "RequestTooLarge"}}},
		{name: "chunked body over the role's limit", raw: "POST " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("b", 64<<10)), hostileBodyLimit/(64<<10)+1) + "0\r\n\r\n",
			want: []want{{413, "RequestTooLarge"}}},

		// Methods.
		{name: "method outside the list", raw: "DELETE " + echoPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n", want: []want{{405, "MethodNotAllowed"}}},
		{name: "methods are case-sensitive", raw: "get " + echoPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n", want: []want{{405, "MethodNotAllowed"}}},
		{name: "overlong method", raw: strings.Repeat("A", 8000) + " " + echoPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n", want: []want{{405, "MethodNotAllowed"}}},
		{name: "method that is not a token", raw: "GE(T " + echoPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n", want: []want{{400, "BadRequest"}}},
		{name: "method over the header limit", raw: big + " " + echoPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n", want: []want{{413, "RequestTooLarge"}}},
		{name: "CONNECT", raw: "CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n", want: []want{{405, "MethodNotAllowed"}}},

		// Paths against the prefixes.
		{name: "encoded slash out of the prefix", raw: get("/CCM_Proxy_MutualAuth/..%2f..%2fetc%2fpasswd"), want: []want{{400, "BadRequest"}}},
		{name: "encoded slash after the RoleID", raw: get(mpPrefix + "/..%2f..%2fsup"), want: []want{{400, "BadRequest"}}},
		{name: "double-encoded slash", raw: get(mpPrefix + "/..%252f..%252fsup"), want: []want{{400, "BadRequest"}}},
		{name: "encoded backslash", raw: get(mpPrefix + "/..%5c..%5csup"), want: []want{{400, "BadRequest"}}},
		{name: "raw dot segments", raw: get(mpPrefix + "/a/../../" + demo.SUPRoleID + "/x"), want: []want{{400, "BadRequest"}}},
		{name: "encoded dot segments", raw: get(mpPrefix + "/%2e%2e/%2e%2e/x"), want: []want{{400, "BadRequest"}}},
		{name: "empty segment", raw: get(mpPrefix + "//cmg-echo"), want: []want{{400, "BadRequest"}}},
		{name: "leading double slash is no prefix", raw: get("/" + echoPath), want: []want{{404, "RouteNotFound"}}},
		{name: "dot segment behind a path parameter", raw: get(mpPrefix + "/..;/..;/x"), want: []want{{400, "BadRequest"}}},
		{name: "overlong UTF-8 slash", raw: get(mpPrefix + "/..%c0%af..%c0%afx"), want: []want{{400, "BadRequest"}}},
		{name: "IIS %u escape", raw: get(mpPrefix + "/..%u002f..%u002fx"), want: []want{{400, "BadRequest"}}},
		{name: "NUL in the path", raw: get(mpPrefix + "/cmg-echo%00.txt"), want: []want{{400, "BadRequest"}}},
		{name: "prefix matched without regard to case, as IIS does", raw: get("/ccm_proxy_mutualauth/" + demo.MPRoleID + "/cmg-echo"), want: []want{{200, ""}}},
		{name: "absolute-form target routes by its path only",
			raw: "GET https://internal.example" + echoPath + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if got.Path != "/mp/cmg-echo" {
					t.Errorf("role saw path %q, want /mp/cmg-echo", got.Path)
				}
			}},
		{name: "asterisk-form target", raw: "GET * HTTP/1.1\r\nHost: localhost\r\n\r\n", want: []want{{404, "RouteNotFound"}}},

		// Host, forwarding and identity headers.
		{name: "Host and X-Forwarded-* spoofing",
			raw: "GET " + echoPath + " HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.example\r\n" +
				"X-Forwarded-Proto: http\r\nForwarded: for=203.0.113.9;host=evil.example\r\nX-Real-IP: 203.0.113.9\r\nTrue-Client-IP: 203.0.113.9\r\n" +
				"X_Forwarded_For: 203.0.113.9\r\nConnection: close\r\n\r\n",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if v := got.Headers["X-Forwarded-For"]; len(v) != 1 || v[0] != "127.0.0.1" {
					t.Errorf("role saw X-Forwarded-For %q, want only the device's address 127.0.0.1", v)
				}
				if v := got.header("X-Forwarded-Proto"); v != "https" {
					t.Errorf("role saw X-Forwarded-Proto %q, want https", v)
				}
				for _, k := range []string{"Forwarded", "X-Real-Ip", "True-Client-Ip", "X_forwarded_for"} {
					if v := got.header(k); v != "" {
						t.Errorf("role saw %s: %q, want it stripped", k, v)
					}
				}
			}},
		{name: "spoofed identity headers",
			raw: "GET " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nCmg-Device-Id: admin\r\ncmg-auth-method: token\r\nCMG-Client-Subject: CN=admin\r\n" +
				"Cmg-Tenant: other\r\nCmg_Device_Id: admin\r\nCmg-Gateway-Instance: 9\r\nCmg-Request-Id: forged\r\nConnection: close\r\n\r\n",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				if v := got.Headers["Cmg-Device-Id"]; len(v) != 1 || v[0] != demo.DeviceName {
					t.Errorf("role saw Cmg-Device-Id %q, want only the verified %q", v, demo.DeviceName)
				}
				if v := got.header("Cmg-Auth-Method"); v != "certificate" {
					t.Errorf("role saw Cmg-Auth-Method %q, want certificate", v)
				}
				for _, k := range []string{"Cmg-Tenant", "Cmg_device_id"} {
					if v := got.header(k); v != "" {
						t.Errorf("role saw %s: %q, want it stripped", k, v)
					}
				}
				if v := got.header("Cmg-Request-Id"); v == "forged" {
					t.Errorf("role saw the device's Cmg-Request-Id")
				}
			}},
		{name: "identity headers do not authenticate", raw: "GET /CCM_Proxy_ServerAuth/" + demo.MPRoleID + "/cmg-echo HTTP/1.1\r\nHost: localhost\r\nCmg-Device-Id: admin\r\nCmg-Auth-Method: token\r\nAuthorization: Bearer forged\r\n\r\n",
			want: []want{{401, "InvalidToken"}}},

		// Protocol switches.
		{name: "h2c upgrade is ignored: HTTP/1.1 answer, no 101",
			raw:  "GET " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
			want: []want{{200, ""}},
			check: func(t *testing.T, got echo) {
				for _, k := range []string{"Upgrade", "Http2-Settings"} {
					if v := got.header(k); v != "" {
						t.Errorf("role saw %s: %q, want it dropped", k, v)
					}
				}
			}},
		{name: "h2 prior-knowledge preface is an HTTP/1 request of method PRI", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: []want{{405, "MethodNotAllowed"}}},
		{name: "websocket upgrade is ignored", raw: "GET " + echoPath + " HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
			want: []want{{200, ""}}},
		{name: "tunnel upgrade without the connector ALPN", raw: "GET /cmg/v1/tunnel HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: cmg-tunnel/1\r\n\r\n",
			want: []want{{404, "RouteNotFound"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rawExchange(t, addr, withCert, tt.raw, len(tt.want))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d responses %v, want %d", len(got), statuses(got), len(tt.want))
			}
			for i, w := range tt.want {
				if w.reason != "" {
					got[i].checkContract(t, w.status, w.reason)
					continue
				}
				if got[i].status != w.status || got[i].header.Get("CMG-Error") != "" {
					t.Fatalf("response %d: got %d (CMG-Error %q, body %q), want a relayed %d", i, got[i].status, got[i].header.Get("CMG-Error"), got[i].body, w.status)
				}
				if tt.check != nil && i == 0 {
					tt.check(t, got[i].echoOf(t))
				}
			}
		})
	}
	fams := scrape(t, e.gws[0].admin)
	for _, r := range []string{"BadRequest", "RequestTooLarge", "MethodNotAllowed", "RouteNotFound"} {
		if metricValue(fams, "cmg_gateway_errors_total", "reason", r) < 1 {
			t.Errorf("cmg_gateway_errors_total{reason=%q} did not count", r)
		}
	}
	if metricValue(fams, "cmg_gateway_requests_total", "role", "none", "code", "400") < 5 {
		t.Errorf("cmg_gateway_requests_total{role=none,code=400} = %v, want the malformed requests counted", metricValue(fams, "cmg_gateway_requests_total", "role", "none", "code", "400"))
	}
	if !strings.Contains(readLog(t, e.logs["gateway-0"]), `"unparsed_status":431`) {
		t.Errorf("the access log has no line for the oversized header")
	}
}

func statuses(rs []rawResponse) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d %s", r.status, r.header.Get("CMG-Error")))
	}
	return out
}

// TestHostileDeviceTLS: what a device may offer in the handshake.
func TestHostileDeviceTLS(t *testing.T) {
	e := newHostileEnv(t, nil)
	addr := clientAddr(e.m, 0)
	ok := func(t *testing.T, cfg *tls.Config) {
		t.Helper()
		got := rawExchange(t, addr, cfg, "GET "+mpPrefix+"/cmg-echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 1)
		if len(got) != 1 || got[0].status != 200 {
			t.Fatalf("got %v, want one 200", statuses(got))
		}
	}
	refused := func(t *testing.T, cfg *tls.Config) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			st := c.ConnectionState()
			c.Close()
			t.Fatalf("handshake succeeded with %s %s, want it refused", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		}
	}
	with := func(f func(c *tls.Config)) *tls.Config {
		c := deviceTLS(t, e.m, true)
		f(c)
		return c
	}
	before := metricValue(scrape(t, e.gws[0].admin), "cmg_gateway_tls_handshakes_total", "result", "failure")
	t.Run("TLS 1.0 refused", func(t *testing.T) {
		refused(t, with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }))
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		refused(t, with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 }))
	})
	weak := map[string][]uint16{
		"CBC with SHA-1":               {tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA},
		"CBC with SHA-256":             {tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256},
		"RSA key exchange":             {tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		"3DES":                         {tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
		"RC4":                          {tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_RC4_128_SHA},
		"only what Go calls insecure":  insecureSuiteIDs(),
		"every TLS 1.2 suite but AEAD": nonAEADSuiteIDs(),
	}
	for name, suites := range weak {
		t.Run("TLS 1.2 "+name+" refused", func(t *testing.T) {
			refused(t, with(func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12; c.CipherSuites = suites }))
		})
	}
	t.Run("TLS 1.2 with ECDHE and AES-GCM served", func(t *testing.T) {
		ok(t, with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		}))
	})
	t.Run("TLS 1.3 served", func(t *testing.T) {
		ok(t, with(func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }))
	})
	t.Run("a device that sends no SNI gets the service certificate and is served", func(t *testing.T) {
		cfg := with(func(c *tls.Config) {
			c.ServerName = ""
			c.InsecureSkipVerify = true // checked by hand below: without SNI there is no name to verify
			roots := c.RootCAs
			c.VerifyConnection = func(st tls.ConnectionState) error {
				if st.ServerName != "" {
					return fmt.Errorf("client sent SNI %q", st.ServerName)
				}
				_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"})
				return err
			}
		})
		ok(t, cfg)
	})
	t.Run("ALPN h2 and http/1.1 negotiates http/1.1", func(t *testing.T) {
		cfg := with(func(c *tls.Config) { c.NextProtos = []string{"h2", "http/1.1"} })
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("negotiated %q, want http/1.1", p)
		}
	})
	t.Run("ALPN h2 alone refused (no_application_protocol)", func(t *testing.T) {
		refused(t, with(func(c *tls.Config) { c.NextProtos = []string{"h2"} }))
	})
	t.Run("a client certificate with a valid chain but without clientAuth is refused", func(t *testing.T) {
		cert := issueDeviceCert(t, e.m, "wrong-eku", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
		got := rawExchange(t, addr, with(func(c *tls.Config) { c.Certificates = []tls.Certificate{cert} }),
			"GET "+mpPrefix+"/cmg-echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 1)
		if len(got) != 1 {
			t.Fatalf("got %v, want one answer", statuses(got))
		}
		got[0].checkContract(t, http.StatusForbidden, "ClientCertificateRequired")
	})
	t.Run("a client certificate with a valid chain but no digitalSignature usage is refused", func(t *testing.T) {
		cert := issueDeviceCert(t, e.m, "wrong-ku", x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
		got := rawExchange(t, addr, with(func(c *tls.Config) { c.Certificates = []tls.Certificate{cert} }),
			"GET "+mpPrefix+"/cmg-echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 1)
		if len(got) != 1 {
			t.Fatalf("got %v, want one answer", statuses(got))
		}
		got[0].checkContract(t, http.StatusForbidden, "ClientCertificateRequired")
	})
	t.Run("a control: the same chain with clientAuth is served", func(t *testing.T) {
		cert := issueDeviceCert(t, e.m, "right-eku", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
		ok(t, with(func(c *tls.Config) { c.Certificates = []tls.Certificate{cert} }))
	})
	t.Run("plain HTTP on the TLS port gets the contract in plain text", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET " + mpPrefix + "/cmg-echo HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		got := readResponses(t, c, 1)
		if len(got) != 1 {
			t.Fatalf("got %v, want one answer", statuses(got))
		}
		got[0].checkContract(t, http.StatusBadRequest, "BadRequest")
	})
	after := metricValue(scrape(t, e.gws[0].admin), "cmg_gateway_tls_handshakes_total", "result", "failure")
	if after-before < float64(3+len(weak)) {
		t.Errorf("cmg_gateway_tls_handshakes_total{result=failure} rose by %v, want at least %d", after-before, 3+len(weak))
	}
}

func insecureSuiteIDs() []uint16 {
	var out []uint16
	for _, s := range tls.InsecureCipherSuites() {
		for _, v := range s.SupportedVersions {
			if v == tls.VersionTLS12 {
				out = append(out, s.ID)
				break
			}
		}
	}
	return out
}

// nonAEADSuiteIDs are Go's "secure" TLS 1.2 suites that are not AEAD with
// forward secrecy (CBC and RSA key exchange), which the gateway refuses too.
func nonAEADSuiteIDs() []uint16 {
	var out []uint16
	for _, s := range tls.CipherSuites() {
		if strings.Contains(s.Name, "CBC") || strings.HasPrefix(s.Name, "TLS_RSA_") {
			out = append(out, s.ID)
		}
	}
	return out
}
