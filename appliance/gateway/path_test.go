package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/appliance/auth"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		path   string
		mode   auth.Mode
		roleID string
		rest   string
		ok     bool
	}{
		{"/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut", auth.Mutual, "72057594037927939", "SMS_MP/.sms_aut", true},
		{"/ccm_proxy_mutualauth/1/x", auth.Mutual, "1", "x", true},
		{"/CCM_Proxy_ServerAuth/1/CCM_STS", auth.Server, "1", "CCM_STS", true},
		{"/CCM_Proxy_ServerAuth/ServiceMetadata", auth.Server, "ServiceMetadata", "", true},
		{"/CCM_Proxy_MutualAuth/", 0, "", "", false},
		{"/CCM_Proxy_MutualAuth", 0, "", "", false},
		{"/other/1/x", 0, "", "", false},
		{"CCM_Proxy_MutualAuth/1/x", 0, "", "", false},
		{"/", 0, "", "", false},
	}
	for _, tt := range tests {
		mode, id, rest, ok := parsePrefix(tt.path)
		if ok != tt.ok || (ok && (mode != tt.mode || id != tt.roleID || rest != tt.rest)) {
			t.Errorf("parsePrefix(%q) = %v, %q, %q, %v; want %v, %q, %q, %v", tt.path, mode, id, rest, ok, tt.mode, tt.roleID, tt.rest, tt.ok)
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		target string
		bad    bool
	}{
		{"/CCM_Proxy_MutualAuth/1/SMS_MP/.sms_aut?MPLIST", false},
		{"/CCM_Proxy_MutualAuth/1/SMS_MP/.sms_pol?{A}.SHA256:00", false},
		{"/CCM_Proxy_MutualAuth/1/a%20b", false},
		{"/CCM_Proxy_MutualAuth/1/../2/x", true},
		{"/CCM_Proxy_MutualAuth/1/a/..", true},
		{"/CCM_Proxy_MutualAuth/1/./x", true},
		{"/CCM_Proxy_MutualAuth/1//x", true},
		{"/CCM_Proxy_MutualAuth/1/..%2f2", true},
		{"/CCM_Proxy_MutualAuth/1/%2e%2e/2", true},
		{"/CCM_Proxy_MutualAuth/1/%252f", true},
		{"/CCM_Proxy_MutualAuth/1/a%5cb", true},
		{"/CCM_Proxy_MutualAuth/1/a\\b", true},
		{"/CCM_Proxy_MutualAuth/1/a%00", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "https://cmg"+tt.target, nil)
		if got := checkPath(r) != nil; got != tt.bad {
			t.Errorf("checkPath(%q) bad = %v, want %v", tt.target, got, tt.bad)
		}
	}
}

func TestWriteRequestHeader(t *testing.T) {
	r := httptest.NewRequest("CCM_POST", "https://cmg.example/CCM_Proxy_MutualAuth/1/ccm_system/request?x=%2F", strings.NewReader("body"))
	r.RemoteAddr = "203.0.113.7:5555"
	r.Header.Set("CCMClientID", "GUID:1")
	r.Header.Set("Cmg-Device-Id", "spoofed")
	r.Header.Set("X-Forwarded-For", "6.6.6.6")
	r.Header.Set("Connection", "keep-alive, X-Hop")
	r.Header.Set("X-Hop", "drop me")
	r.Header.Set("Expect", "100-continue")
	x := &exchange{r: r, id: "req1", ident: &auth.Identity{Method: auth.Certificate, Device: "dev-1", Subject: "CN=dev-1"}}
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	n := writeRequestHeader(bw, x, 3)
	bw.Flush()
	if n != b.Len() {
		t.Errorf("reported %d bytes, wrote %d", n, b.Len())
	}
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		t.Fatalf("the connector could not parse the request: %v\n%s", err, b.String())
	}
	checks := map[string]string{
		"Ccmclientid":       "GUID:1",
		HeaderDeviceID:      "dev-1",
		HeaderAuthMethod:    "certificate",
		HeaderClientAddress: "203.0.113.7",
		HeaderInstance:      "3",
		HeaderRequestID:     "req1",
		"X-Forwarded-For":   "203.0.113.7",
		"X-Forwarded-Proto": "https",
		"X-Hop":             "",
		"Expect":            "",
		HeaderClientSubject: "CN=dev-1",
	}
	for k, want := range checks {
		if got := req.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if req.ContentLength != 4 || req.Method != "CCM_POST" || req.RequestURI != "/CCM_Proxy_MutualAuth/1/ccm_system/request?x=%2F" || !req.Close {
		t.Errorf("got %s %s len %d close %v", req.Method, req.RequestURI, req.ContentLength, req.Close)
	}
	if vs := req.Header.Values(HeaderDeviceID); len(vs) != 1 {
		t.Errorf("device id header sent %d times: %v", len(vs), vs)
	}
}

// FuzzHasAmbiguousEscape checks the escape scan against its plain definition.
func FuzzHasAmbiguousEscape(f *testing.F) {
	for _, s := range []string{"/a/%2F/b", "/a%2f", "%5C", "/%25x", "/x%00", "/%2", "%", "/CCM_Proxy_MutualAuth/1/a%20b", "%%2f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		lower := strings.ToLower(raw)
		want := strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%25") || strings.Contains(lower, "%00")
		if got := hasAmbiguousEscape(raw); got != want {
			t.Errorf("hasAmbiguousEscape(%q) = %v, want %v", raw, got, want)
		}
	})
}
