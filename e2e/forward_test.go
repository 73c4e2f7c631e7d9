package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/demo"
)

// echo is what the simulated role's cmg-echo endpoint reports.
type echo struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RawQuery   string              `json:"raw_query"`
	Headers    map[string][]string `json:"headers"`
	BodyLen    int64               `json:"body_len"`
	BodySHA256 string              `json:"body_sha256"`
}

func (e echo) header(k string) string {
	for hk, v := range e.Headers {
		if strings.EqualFold(hk, k) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

const mpPrefix = "/CCM_Proxy_MutualAuth/" + demo.MPRoleID

func TestDeviceReachesMPThroughEachInstance(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, g := range e.m.Gateways {
		t.Run(fmt.Sprintf("instance %d", g.Instance), func(t *testing.T) {
			res := e.curl(true, g.ClientURL+e.m.ExamplePath)
			if res.status != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", res.status, res.stderr)
			}
			if !bytes.Contains(res.body, []byte("<MPList>")) {
				t.Errorf("body %q is not the MP's MPLIST answer", res.body)
			}
			if res.header.Get("Cmg-Request-Id") == "" {
				t.Error("no CMG-Request-ID header")
			}
		})
	}
}

func TestNoClientCertificate(t *testing.T) {
	e := newEnv(t, envOptions{})
	res := e.curl(false, e.m.Gateways[0].ClientURL+e.m.ExamplePath)
	if res.status != http.StatusForbidden {
		t.Fatalf("got status %d, want 403", res.status)
	}
	if got := res.header.Get("CMG-Error"); got != "ClientCertificateRequired" {
		t.Errorf("CMG-Error = %q, want ClientCertificateRequired", got)
	}
	var body struct {
		Error     string `json:"error"`
		Detail    string `json:"detail"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", res.body, err)
	}
	if body.Error != "ClientCertificateRequired" || body.Detail == "" || body.RequestID == "" {
		t.Errorf("body = %+v, want error ClientCertificateRequired with a detail and a request id", body)
	}
}

func TestMethodsHeadersAndBodiesPassThrough(t *testing.T) {
	e := newEnv(t, envOptions{})
	url := e.m.Gateways[1].ClientURL + mpPrefix + "/cmg-echo?x=1&y=%2F"
	body64k := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	sum := sha256.Sum256(body64k)
	ccmHeaders := []string{
		"-H", "CCMClientID: GUID:5A3B2C1D-0000-0000-0000-000000000001",
		"-H", "CCMClientIDSignature: 0A1B2C3D",
		"-H", "CCMClientTimestamp: 2026-11-25T12:00:00Z",
		"-H", "CCMClientTimestampSignature: 4E5F6A7B",
	}
	tests := []struct {
		name     string
		args     []string
		method   string
		bodyLen  int64
		bodyHash string
	}{
		{"CCM_POST 64 KiB", append([]string{"-X", "CCM_POST", "--data-binary", "@-"}, ccmHeaders...), "CCM_POST", int64(len(body64k)), hex.EncodeToString(sum[:])},
		{"BITS_POST", append([]string{"-X", "BITS_POST", "-H", "BITS-Packet-Type: Ping"}, ccmHeaders...), "BITS_POST", 0, ""},
		{"PROPFIND", append([]string{"-X", "PROPFIND", "-H", "Depth: 1"}, ccmHeaders...), "PROPFIND", 0, ""},
		{"GET with Range", append([]string{"-H", "Range: bytes=100-199"}, ccmHeaders...), "GET", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res curlResult
			if tt.bodyLen > 0 {
				res = e.curlStdin(body64k, url, tt.args...)
			} else {
				res = e.curl(true, url, tt.args...)
			}
			if res.status != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", res.status, res.stderr)
			}
			var got echo
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatalf("echo body %q: %v", res.body, err)
			}
			if got.Method != tt.method {
				t.Errorf("role saw method %q, want %q", got.Method, tt.method)
			}
			if got.RawQuery != "x=1&y=%2F" {
				t.Errorf("role saw query %q, want x=1&y=%%2F", got.RawQuery)
			}
			for i := 0; i < len(ccmHeaders); i += 2 {
				k, v, _ := strings.Cut(ccmHeaders[i+1], ": ")
				if g := got.header(k); g != v {
					t.Errorf("role saw %s = %q, want %q", k, g, v)
				}
			}
			if tt.name == "GET with Range" && got.header("Range") != "bytes=100-199" {
				t.Errorf("role saw Range %q, want bytes=100-199", got.header("Range"))
			}
			if got.BodyLen != tt.bodyLen {
				t.Errorf("role saw a %d-byte body, want %d", got.BodyLen, tt.bodyLen)
			}
			if tt.bodyHash != "" && got.BodySHA256 != tt.bodyHash {
				t.Errorf("role saw body sha256 %s, want %s", got.BodySHA256, tt.bodyHash)
			}
			if got.header("Cmg-Device-Id") != demo.DeviceName {
				t.Errorf("role saw device %q, want %q from the gateway's header", got.header("Cmg-Device-Id"), demo.DeviceName)
			}
		})
	}

	t.Run("HEAD", func(t *testing.T) {
		res := e.curl(true, e.m.Gateways[0].ClientURL+mpPrefix+"/cmg-blob?size=12345", "-I")
		if res.status != http.StatusOK || res.header.Get("Content-Length") != "12345" {
			t.Errorf("HEAD got %d with Content-Length %q, want 200 and 12345", res.status, res.header.Get("Content-Length"))
		}
		// curl -I writes the header where the body would go; nothing may follow it.
		if !bytes.HasSuffix(res.body, []byte("\r\n\r\n")) {
			t.Errorf("HEAD returned bytes after the header: %q", res.body)
		}
	})
	t.Run("Range bytes", func(t *testing.T) {
		full := e.curl(true, e.m.Gateways[0].ClientURL+mpPrefix+"/cmg-blob?size=5000")
		part := e.curl(true, e.m.Gateways[0].ClientURL+mpPrefix+"/cmg-blob?size=5000", "-H", "Range: bytes=1000-2999")
		if part.status != http.StatusPartialContent {
			t.Fatalf("range got %d, want 206", part.status)
		}
		if !bytes.Equal(part.body, full.body[1000:3000]) {
			t.Errorf("range body differs from bytes 1000-2999 of the whole")
		}
	})
	t.Run("spoofed identity headers are stripped", func(t *testing.T) {
		res := e.curl(true, url, "-H", "CMG-Device-Id: someone-else", "-H", "X-Forwarded-For: 6.6.6.6")
		var got echo
		_ = json.Unmarshal(res.body, &got)
		if d := got.header("Cmg-Device-Id"); d != demo.DeviceName {
			t.Errorf("role saw device %q, want %q", d, demo.DeviceName)
		}
		if xff := got.header("X-Forwarded-For"); xff != "127.0.0.1" {
			t.Errorf("role saw X-Forwarded-For %q, want 127.0.0.1", xff)
		}
	})
}

// curlStdin runs curl with the device certificate, sending body on stdin.
func (e *env) curlStdin(body []byte, url string, args ...string) curlResult {
	e.t.Helper()
	return e.curlWith(body, true, url, args...)
}
