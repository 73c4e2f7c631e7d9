package roles

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAuthority(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	tests := []struct {
		name, query string
		want        int
		check       func(t *testing.T, body string)
	}{
		{"MP list", "MPLIST", 200, func(t *testing.T, b string) {
			if !strings.HasPrefix(b, `<MPList><MP Name="MP01.CORP.EXAMPLE.COM" FQDN="mp01.corp.example.com"><Version>9128</Version>`) {
				t.Errorf("got %s", b)
			}
		}},
		{"lower case, as tools send it", "mplist", 200, nil},
		{"MP list 2 names the site", "MPLIST2", 200, func(t *testing.T, b string) {
			if !strings.Contains(b, `SiteCode="PS1"`) {
				t.Errorf("got %s, want SiteCode", b)
			}
		}},
		{"MP certificate is hex DER", "MPCERT", 200, func(t *testing.T, b string) { parseHexCert(t, b, "SMS Signing Certificate") }},
		{"site signing certificate", "SITESIGNCERT", 200, func(t *testing.T, b string) { parseHexCert(t, b, "Site Server") }},
		{"key information for media", "MPKEYINFORMATIONMEDIA", 200, func(t *testing.T, b string) {
			if !strings.Contains(b, "<SITECODE>PS1</SITECODE>") {
				t.Errorf("got %s", b)
			}
		}},
		{"unknown", "NOPE", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, c, "GET", base+"/mp/SMS_MP/.sms_aut?"+tt.query, nil, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if resp.Header.Get("Server") != serverHeader {
				t.Errorf("Server: got %q, want %q", resp.Header.Get("Server"), serverHeader)
			}
			if len(b) > 4000 {
				t.Errorf("got %d bytes, want at most 4 KB (client-traffic.md: 0.5-4 KB)", len(b))
			}
			if tt.check != nil {
				tt.check(t, string(b))
			}
		})
	}
	t.Run("certificates are deterministic", func(t *testing.T) {
		_, other := startServer(t, DefaultConfig())
		_, a := do(t, c, "GET", base+"/mp/SMS_MP/.sms_aut?SITESIGNCERT", nil, nil)
		_, b := do(t, c, "GET", other+"/mp/SMS_MP/.sms_aut?SITESIGNCERT", nil, nil)
		if !bytes.Equal(a, b) {
			t.Error("two servers with the same seed gave different certificates")
		}
	})
}

func parseHexCert(t *testing.T, h, wantCN string) {
	t.Helper()
	der, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("not hex: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("not a certificate: %v", err)
	}
	if cert.Subject.CommonName != wantCN {
		t.Errorf("CN: got %q, want %q", cert.Subject.CommonName, wantCN)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("self-signature: %v", err)
	}
}

// clientMessage builds a client request message the way the CM client does.
func clientMessage(endpoint, mode, body string) Message {
	return Message{
		Header: MessageHeader{
			ReplyCompression: "zlib", Compressed: true, ID: "{041A35B4-DCEE-4F64-A978-D4D489F47D28}",
			ClientAuth: []HookProperty{{Name: "AuthSenderMachine", Value: "DESKTOP-1"}, {Name: "PublicKey", Value: "0602000000A40000"}},
			ReplyMode:  mode, ReplyTo: "direct:DESKTOP-1:SccmMessaging", SentTime: "2024-05-01T12:00:00Z",
			SourceID: "GUID:8B7B6A3C-2F14-4C55-9E51-2D3F0C1A9B77", SourceHost: "DESKTOP-1",
			TargetAddress: "mp:" + endpoint, TargetEndpoint: endpoint, TargetHost: "mp01.corp.example.com", Timeout: 60000,
		},
		Body: body,
	}
}

const (
	registrationBody = `<ClientRegistrationRequest><Data HashAlgorithm="1.2.840.113549.1.1.11" SMSID="" RequestType="Registration" TimeStamp="2024-05-01T12:00:00Z"><AgentInformation AgentIdentity="CCMSetup.exe" AgentVersion="5.00.9128.1000" AgentType="0" /><DiscoveryProperties><Property Name="Netbios Name" Value="DESKTOP-1" /><Property Name="FQ Name" Value="desktop-1.corp.example.com" /></DiscoveryProperties></Data><Signature><SignatureValue>00</SignatureValue></Signature></ClientRegistrationRequest>`
	assignmentsBody  = `<RequestAssignments SchemaVersion="1.00" ACK="false" RequestType="Always"><Identification><Machine><ClientID>GUID:8B7B6A3C-2F14-4C55-9E51-2D3F0C1A9B77</ClientID><FQDN>desktop-1.corp.example.com</FQDN><NetBIOSName>DESKTOP-1</NetBIOSName><SID /></Machine><User /></Identification><PolicySource>SMS:PS1</PolicySource><Resource ResourceType="Machine" /><ServerCookie>COOKIE</ServerCookie></RequestAssignments>`
	stateBody        = `<Report><ReportHeader><Identification><Machine><ClientID>GUID:8B7B6A3C</ClientID></Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent><ReportType>Full</ReportType></ReportDetails></ReportHeader><ReportBody><StateMessage><Topic ID="x" Type="500"/><State ID="2"/></StateMessage></ReportBody></Report>`
	ddrBody          = `<Report><ReportHeader><ReportDetails><ReportContent>Inventory Data</ReportContent><ReportType>Full</ReportType></ReportDetails><InventoryAction ActionType="Predefined"><InventoryActionID>{00000000-0000-0000-0000-000000000003}</InventoryActionID><Description>Discovery</Description></InventoryAction></ReportHeader><ReportBody /></Report>`
	hinvBody         = `<Report><ReportHeader><ReportDetails><ReportType>Delta</ReportType></ReportDetails><InventoryAction ActionType="Predefined"><InventoryActionID>{00000000-0000-0000-0000-000000000001}</InventoryActionID></InventoryAction></ReportHeader><ReportBody /></Report>`
)

func TestMessaging(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	c := newClient(t)
	z := DefaultSizes()
	tests := []struct {
		name, path, endpoint, mode, body string
		wantKind, wantRoot               string
		wantSize                         int // 0: async, empty reply
		check                            func(t *testing.T, reply string)
	}{
		{"registration", "/ccm_system_windowsauth/request", "MP_ClientRegistration", "Sync", registrationBody,
			kindRegistration, "ClientRegistrationReply", z.RegistrationReply, func(t *testing.T, r string) {
				if !strings.Contains(r, `SMSID="GUID:`) || !strings.Contains(r, `ApprovalStatus="1"`) {
					t.Errorf("got %.200s, want SMSID and ApprovalStatus 1", r)
				}
			}},
		{"registration on the token path is AAD-approved", "/ccm_system_tokenauth/request", "MP_ClientRegistration", "Sync", registrationBody,
			kindRegistration, "ClientRegistrationReply", z.RegistrationReply, func(t *testing.T, r string) {
				if !strings.Contains(r, `ApprovalStatus="3"`) {
					t.Errorf("got %.200s, want ApprovalStatus 3", r)
				}
			}},
		{"content location", "/ccm_system_altauth/request", "MP_LocationManager", "Sync", `<ContentLocationRequest SchemaVersion="1.00"><Package ID="PS100012" Version="1"/></ContentLocationRequest>`,
			kindLocation, "ContentLocationReply", z.LocationReply, nil},
		{"WSUS location", "/ccm_system/request", "MP_LocationManager", "Sync", `<WSUSLocationRequest SchemaVersion="1.00"><Content><ContentID>x</ContentID></Content></WSUSLocationRequest>`,
			kindWSUSLocation, "WSUSLocationReply", z.WSUSLocationReply, func(t *testing.T, r string) {
				if !strings.Contains(r, `WSUSURL="http://sup01.corp.example.com:8530"`) {
					t.Errorf("got %.300s, want the configured SUP URL", r)
				}
			}},
		{"policy assignments, first contact", "/ccm_system/request", "MP_PolicyManager", "Sync", strings.Replace(assignmentsBody, "COOKIE", "", 1),
			kindAssignments, "ReplyAssignments", z.PolicyAssignmentsFull, func(t *testing.T, r string) {
				if n := strings.Count(r, "<PolicyAssignment "); n < 140 || n > 170 {
					t.Errorf("got %d assignments, want ~150 (client-traffic.md: ~24 KB for 150)", n)
				}
				if !strings.Contains(r, "<![CDATA[http://<mp>/SMS_MP/.sms_pol?") {
					t.Error("no PolicyLocation URL")
				}
			}},
		{"policy assignments, unchanged", "/ccm_system/request", "MP_PolicyManager", "Sync", strings.Replace(assignmentsBody, "COOKIE", s.ServerCookie(), 1),
			kindAssignments, "ReplyAssignments", z.PolicyAssignmentsUnchanged, nil},
		{"state messages are async", "/ccm_system/request", "MP_RelayEndpoint", "Async", stateBody, kindStateMessage, "", 0, nil},
		{"DDR", "/ccm_system/request", "MP_DdrEndpoint", "Async", ddrBody, kindDDR, "", 0, nil},
		{"HINV by action ID", "/ccm_system/request", "MP_HinvEndpoint", "Async", hinvBody, kindHINV, "", 0, nil},
		{"unknown sync endpoint", "/ccm_system/request", "MP_Whatever", "Sync", `<Anything/>`, kindOtherMessage, "Reply", -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().Kinds[tt.wantKind]
			ct, body := EncodeMessage(clientMessage(tt.endpoint, tt.mode, tt.body))
			resp, b := do(t, c, "CCM_POST", base+"/mp"+tt.path, bytes.NewReader(body), map[string]string{"Content-Type": ct, "User-Agent": "ccmhttp"})
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, b)
			}
			if got := s.Stats().Kinds[tt.wantKind]; got != before+1 {
				t.Errorf("kind %s: got count %d, want %d", tt.wantKind, got, before+1)
			}
			if tt.wantSize == 0 {
				if len(b) != 0 {
					t.Errorf("async: got %d body bytes, want 0", len(b))
				}
				return
			}
			if tt.wantSize > 0 && (len(b) < tt.wantSize*92/100 || len(b) > tt.wantSize*108/100) {
				t.Errorf("reply: got %d bytes, want %d +-8%%", len(b), tt.wantSize)
			}
			m, err := ParseMessage(resp.Header.Get("Content-Type"), b, 1<<24)
			if err != nil {
				t.Fatalf("parsing the reply: %v", err)
			}
			if m.Header.CorrelationID != "{041A35B4-DCEE-4F64-A978-D4D489F47D28}" || !m.Header.Compressed || m.Header.TargetHost != "DESKTOP-1" {
				t.Errorf("reply header: got %+v, want it to answer the request", m.Header)
			}
			if root := scanBody(m.Body).Root; root != tt.wantRoot {
				t.Errorf("reply root: got %q, want %q", root, tt.wantRoot)
			}
			if err := wellFormed(m.Body); err != nil {
				t.Errorf("reply body is not XML: %v", err)
			}
			if tt.check != nil {
				tt.check(t, m.Body)
			}
		})
	}
	t.Run("reply is deterministic", func(t *testing.T) {
		ct, body := EncodeMessage(clientMessage("MP_PolicyManager", "Sync", assignmentsBody))
		_, a := do(t, c, "CCM_POST", base+"/mp/ccm_system/request", bytes.NewReader(body), map[string]string{"Content-Type": ct})
		_, b := do(t, c, "POST", base+"/mp/CCM_System/Request", bytes.NewReader(body), map[string]string{"Content-Type": ct})
		if !bytes.Equal(a, b) {
			t.Error("the same request got two different replies")
		}
	})
	for _, tt := range []struct {
		name, method, ct string
		body             []byte
		want             int
	}{
		{"GET is not a message", "GET", "", nil, 405},
		{"not multipart", "CCM_POST", "text/plain", []byte("hello"), 400},
		{"truncated", "CCM_POST", `multipart/mixed; boundary="` + MessageBoundary + `"`, []byte("--" + MessageBoundary + "\r\n"), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, c, tt.method, base+"/mp/ccm_system/request", bytes.NewReader(tt.body), map[string]string{"Content-Type": tt.ct})
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func wellFormed(doc string) error {
	d := xml.NewDecoder(strings.NewReader(doc))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func TestPolicyBodies(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	c := newClient(t)
	r := DefaultSizes().PolicyBody
	t.Run("sizes follow the configured distribution", func(t *testing.T) {
		var total int
		const n = 300
		for i := range n {
			b := s.policyBodyText("{" + strconv.Itoa(i) + "}")
			if len(b) < r.Min-1 || len(b) > r.Max || len(b)%2 != 0 {
				t.Fatalf("policy %d: got %d bytes, want an even size in [%d, %d]", i, len(b), r.Min, r.Max)
			}
			total += len(b)
		}
		if mean := total / n; mean < r.Typical*85/100 || mean > r.Typical*115/100 {
			t.Errorf("mean size: got %d, want %d +-15%%", mean, r.Typical)
		}
	})
	url := base + "/mp/SMS_MP/.sms_pol?%7BC4F1E0D2-1111-4A4A-9B9B-0123456789AB%7D.SHA256:0011"
	resp, whole := do(t, c, "GET", url, nil, nil)
	if resp.StatusCode != 200 || !bytes.HasPrefix(whole, []byte{0xFF, 0xFE, '<', 0}) {
		t.Fatalf("got %d %x, want 200 and UTF-16 XML", resp.StatusCode, whole[:min(8, len(whole))])
	}
	text, _ := decodeUTF16(whole)
	if !strings.Contains(text, `PolicyID="{C4F1E0D2-1111-4A4A-9B9B-0123456789AB}"`) || wellFormed(strings.TrimRight(text, "\r\n")) != nil {
		t.Errorf("policy body: got %.200s, want well-formed XML naming the policy", text)
	}
	_, again := do(t, c, "GET", strings.Replace(url, "%7B", "{", 1), nil, map[string]string{"Range": "bytes=100-199"})
	if !bytes.Equal(again, whole[100:200]) {
		t.Error("ranged GET of the same policy: bytes differ")
	}
	head, _ := do(t, c, "HEAD", url, nil, nil)
	if head.ContentLength != int64(len(whole)) {
		t.Errorf("HEAD: got Content-Length %d, want %d", head.ContentLength, len(whole))
	}
}

func TestCIDocuments(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	c := newClient(t)
	doc := "ScopeId_0E5B/Application_4F2A/5/PROPERTIES"
	resp, b := do(t, c, "GET", base+"/mp/SMS_MP/.sms_dcm?Id&DocumentId="+doc+"&Hash=AB12&Compression=zlib", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("got %d, want 200", resp.StatusCode)
	}
	want := newPRNG(s.cfg.Seed, "ci document "+doc).sizeIn(s.cfg.Sizes.CIDocument)
	if len(b) < want*99/100 || len(b) > want*101/100 {
		t.Errorf("compressed size: got %d, want %d +-1%%", len(b), want)
	}
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if err := wellFormed(string(plain)); err != nil || !bytes.Contains(plain, []byte("DesiredConfigurationDigest")) {
		t.Errorf("CI document: %v, %.120s", err, plain)
	}
	resp, b = do(t, c, "GET", base+"/mp/sms_mp/.sms_dcm?Id&DocumentId="+doc, nil, nil)
	if resp.StatusCode != 200 || len(b) != want {
		t.Errorf("uncompressed: got %d, %d bytes, want 200, %d bytes", resp.StatusCode, len(b), want)
	}
}

func TestCCMSTS(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	aad := strings.Repeat("x", 1900)
	resp, b := do(t, c, "POST", base+"/mp/CCM_STS", strings.NewReader(aad), nil)
	if resp.StatusCode != 200 || len(b) != DefaultSizes().CCMTokenReply {
		t.Fatalf("got %d, %d bytes, want 200, %d bytes (client-traffic.md: 1,566 B)", resp.StatusCode, len(b), DefaultSizes().CCMTokenReply)
	}
	var tr TokenReply
	if err := json.Unmarshal(b, &tr); err != nil || strings.Count(tr.Token, ".") != 2 || tr.ExpiresIn != 8*3600 {
		t.Errorf("got %+v (%v), want a JWT-shaped token living 8 h", tr, err)
	}
	t.Run("custom issuer", func(t *testing.T) {
		_, base := startServer(t, DefaultConfig(), WithTokenIssuer(func(_ context.Context, req TokenRequest) (string, time.Duration, error) {
			if string(req.Body) == "refuse" {
				return "", 0, errors.New("no")
			}
			return "tok-" + req.Header.Get("X-Device"), time.Hour, nil
		}))
		_, b := do(t, c, "POST", base+"/mp/ccm_sts", strings.NewReader("ok"), map[string]string{"X-Device": "d1"})
		if !strings.Contains(string(b), `"token":"tok-d1"`) {
			t.Errorf("got %s, want the issuer's token", b)
		}
		resp, _ := do(t, c, "POST", base+"/mp/ccm_sts", strings.NewReader("refuse"), nil)
		if resp.StatusCode != 401 {
			t.Errorf("refused: got %d, want 401", resp.StatusCode)
		}
	})
}

func TestNotification(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	resp, b := do(t, newClient(t), "GET", base+"/mp/BGB/handler.ashx?RequestType=LogIn", nil, nil)
	if resp.StatusCode != 200 || len(b) != DefaultSizes().NotificationReply || !bytes.Contains(b, []byte(`Type="SignInConfirm"`)) {
		t.Errorf("got %d, %d bytes %.100s, want 200, %d bytes SignInConfirm", resp.StatusCode, len(b), b, DefaultSizes().NotificationReply)
	}
}

func TestBITSUpload(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	c := newClient(t)
	url := base + "/mp/CCM_Incoming/{5A2F}.Xml"
	bits := func(t *testing.T, typ, session, rng string, body []byte) *http.Response {
		t.Helper()
		h := map[string]string{"BITS-Packet-Type": typ}
		if typ == "Create-Session" {
			h["BITS-Supported-Protocols"] = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
		}
		if session != "" {
			h["BITS-Session-Id"] = session
		}
		if rng != "" {
			h["Content-Range"] = rng
		}
		resp, _ := do(t, c, "BITS_POST", url, bytes.NewReader(body), h)
		if resp.Header.Get("BITS-Packet-Type") != "Ack" {
			t.Errorf("%s: BITS-Packet-Type: got %q, want Ack", typ, resp.Header.Get("BITS-Packet-Type"))
		}
		return resp
	}
	resp := bits(t, "Create-Session", "", "", nil)
	id := resp.Header.Get("BITS-Session-Id")
	if resp.StatusCode != 200 || resp.Header.Get("BITS-Protocol") != bitsUploadProtocol || !strings.HasPrefix(id, "{") {
		t.Fatalf("Create-Session: got %d %v", resp.StatusCode, resp.Header)
	}
	chunk := make([]byte, 100)
	steps := []struct {
		name, typ, rng string
		body           []byte
		want           int
		wantNext       string
		wantErr        string
	}{
		{"first fragment", "Fragment", "bytes 0-99/300", chunk, 200, "100", ""},
		{"second fragment", "Fragment", "bytes 100-199/300", chunk, 200, "200", ""},
		{"gap", "Fragment", "bytes 250-299/300", chunk[:50], 416, "200", ""},
		{"overlap resent", "Fragment", "bytes 150-249/300", chunk, 200, "250", ""},
		{"length mismatch", "Fragment", "bytes 250-299/300", chunk, 400, "", bitsEInvalidArg},
		{"last fragment", "Fragment", "bytes 250-299/300", chunk[:50], 200, "300", ""},
		{"close", "Close-Session", "", nil, 200, "", ""},
		{"fragment after close", "Fragment", "bytes 0-99/300", chunk, 500, "", bitsESessionNotFound},
		{"ping", "Ping", "", nil, 200, "", ""},
		{"unknown packet", "Nonsense", "", nil, 400, "", bitsEInvalidArg},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			resp := bits(t, st.typ, id, st.rng, st.body)
			if resp.StatusCode != st.want {
				t.Errorf("got %d, want %d", resp.StatusCode, st.want)
			}
			if got := resp.Header.Get("BITS-Received-Content-Range"); got != st.wantNext {
				t.Errorf("BITS-Received-Content-Range: got %q, want %q", got, st.wantNext)
			}
			if got := resp.Header.Get("BITS-Error-Code"); got != st.wantErr {
				t.Errorf("BITS-Error-Code: got %q, want %q", got, st.wantErr)
			}
		})
	}
	t.Run("create without the upload protocol", func(t *testing.T) {
		resp, _ := do(t, c, "BITS_POST", url, nil, map[string]string{"BITS-Packet-Type": "Create-Session"})
		if resp.StatusCode != 400 || resp.Header.Get("BITS-Error-Code") != bitsEProtocolMismatch {
			t.Errorf("got %d %q, want 400 %s", resp.StatusCode, resp.Header.Get("BITS-Error-Code"), bitsEProtocolMismatch)
		}
	})
	if n := s.bits.len(); n != 0 {
		t.Errorf("open sessions: got %d, want 0", n)
	}
}

func TestBITSSessionBounds(t *testing.T) {
	b := newBITSSessions(2, time.Minute)
	a := b.create(1, "/a", fixedNow)
	b.create(1, "/b", fixedNow)
	b.create(1, "/c", fixedNow)
	if b.len() != 2 || b.with(a.id, fixedNow, func(*bitsSession) {}) {
		t.Errorf("got %d sessions with the oldest kept, want 2 without it", b.len())
	}
	if b.with("{none}", fixedNow.Add(2*time.Minute), func(*bitsSession) {}); b.len() != 0 {
		t.Errorf("after the TTL: got %d sessions, want 0", b.len())
	}
}

func TestPropfindAndIncoming(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	for _, tt := range []struct {
		name, method, path string
		want               int
		contains           string
	}{
		{"upload folder is a collection", "PROPFIND", "/mp/CCM_Incoming/", 207, "<D:collection/>"},
		{"a client folder", "PROPFIND", "/mp/CCM_Client/", 207, "<D:collection/>"},
		{"a file on the SUP", "PROPFIND", "/sup/Content/AB/file.cab", 207, "<D:resourcetype/>"},
		{"upload folder serves nothing", "GET", "/mp/CCM_Incoming/x", 403, ""},
		{"unknown MP path", "GET", "/mp/nothing/here", 404, "404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, c, tt.method, base+tt.path, nil, map[string]string{"Depth": "0"})
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.contains) {
				t.Errorf("got %d %.200s, want %d containing %q", resp.StatusCode, b, tt.want, tt.contains)
			}
			if tt.want == 207 {
				if err := wellFormed(string(b)); err != nil {
					t.Errorf("not XML: %v", err)
				}
			}
		})
	}
}
