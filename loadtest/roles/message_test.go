package roles

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    Message
	}{
		{"compressed with client auth", clientMessage("MP_PolicyManager", "Sync", assignmentsBody)},
		{"uncompressed, non-ASCII", Message{Header: MessageHeader{ID: "{1}", ReplyMode: "Async", TargetEndpoint: "MP_RelayEndpoint", SourceHost: "PC-Ü"}, Body: "<Report>ÄÖ 😀</Report>"}},
		{"empty body", Message{Header: MessageHeader{ID: "{2}", TargetAddress: "mp:MP_DdrEndpoint"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ct, b := EncodeMessage(tt.m)
			got, err := ParseMessage(ct, b, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != tt.m.Body {
				t.Errorf("body: got %q, want %q", got.Body, tt.m.Body)
			}
			h, w := got.Header, tt.m.Header
			if h.ID != w.ID || h.SourceHost != w.SourceHost || h.Compressed != w.Compressed || len(h.ClientAuth) != len(w.ClientAuth) {
				t.Errorf("header: got %+v, want %+v", h, w)
			}
			if want := strings.TrimPrefix(w.TargetAddress, "mp:"); w.TargetEndpoint == "" && h.TargetEndpoint != want {
				t.Errorf("endpoint from the address: got %q, want %q", h.TargetEndpoint, want)
			}
		})
	}
}

// TestParseToolMessage parses a message framed the way the published tools frame it
// (Python: BOM + UTF-16 header, body CRLF-terminated, no CRLF after the last boundary).
func TestParseToolMessage(t *testing.T) {
	hdr := `<Msg ReplyCompression="zlib" SchemaVersion="1.1"><Body Type="ByteRange" Length="16" Offset="0" /><Hooks><Hook3 Name="zlib-compress" /></Hooks><ID>{5DD100CD-DF1D-45F5-BA17-A327F43465F8}</ID><ReplyMode>Sync</ReplyMode><TargetAddress>mp:MP_ClientRegistration</TargetAddress><TargetEndpoint>MP_ClientRegistration</TargetEndpoint></Msg>`
	body := appendUTF16(nil, "<Data/>")
	body = append(body, 0, 0, '\r', '\n')
	var b bytes.Buffer
	b.WriteString("--" + MessageBoundary + "\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n\xff\xfe")
	b.Write(appendUTF16(nil, hdr))
	b.WriteString("\r\n--" + MessageBoundary + "\r\ncontent-type: application/octet-stream\r\n\r\n")
	b.Write(zlibBytes(body))
	b.WriteString("\r\n--" + MessageBoundary + "--")
	m, err := ParseMessage(`multipart/mixed; boundary="`+MessageBoundary+`"`, b.Bytes(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "<Data/>" || classify(m.Header, scanBody(m.Body)) != kindRegistration {
		t.Errorf("got body %q kind %s, want <Data/> registration", m.Body, classify(m.Header, scanBody(m.Body)))
	}
}

func TestParseMessageLimits(t *testing.T) {
	big := clientMessage("MP_HinvEndpoint", "Async", "<Report>"+strings.Repeat("a", 100000)+"</Report>")
	ct, b := EncodeMessage(big)
	if _, err := ParseMessage(ct, b, 1000); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("a 200 KB body under a 1000 B limit: got %v, want ErrMessageTooLarge", err)
	}
	if _, err := ParseMessage("application/json", b, 1<<20); !errors.Is(err, ErrNotMessage) {
		t.Errorf("wrong content type: got %v, want ErrNotMessage", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name, endpoint, body, want string
	}{
		{"registration", "MP_ClientRegistration", registrationBody, kindRegistration},
		{"assignments", "MP_PolicyManager", assignmentsBody, kindAssignments},
		{"state by content", "MP_Anything", stateBody, kindStateMessage},
		{"DDR by action", "MP_RelayEndpoint", ddrBody, kindDDR},
		{"HINV by action", "", hinvBody, kindHINV},
		{"SINV by endpoint", "MP_SinvEndpoint", "<Report/>", kindSINV},
		{"status by endpoint", "MP_StatusManager", "<Report/>", kindStatusMessage},
		{"WSUS location", "MP_LocationManager", "<WSUSLocationRequest/>", kindWSUSLocation},
		{"site location", "MP_LocationManager", "<SiteInformationRequest/>", kindLocation},
		{"unknown", "MP_X", "<X/>", kindOtherMessage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(MessageHeader{TargetEndpoint: tt.endpoint}, scanBody(tt.body)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, m := range []Message{
		clientMessage("MP_PolicyManager", "Sync", assignmentsBody),
		clientMessage("MP_RelayEndpoint", "Async", stateBody),
		{Header: MessageHeader{ID: "{1}"}, Body: "<x/>"},
	} {
		_, b := EncodeMessage(m)
		f.Add(`multipart/mixed; boundary="`+MessageBoundary+`"`, b)
	}
	f.Add(`multipart/mixed; boundary=b`, []byte("--b\r\n\r\n<Msg/>\r\n--b\r\n\r\n\x78\x9c\r\n--b--"))
	f.Add("text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		const limit = 1 << 16
		m, err := ParseMessage(ct, body, limit)
		if err != nil {
			return
		}
		if len(m.Body) > 2*limit {
			t.Fatalf("body of %d bytes past the %d limit", len(m.Body), limit)
		}
		classify(m.Header, scanBody(m.Body))
		// What parses re-encodes and parses to the same body.
		ct2, b2 := EncodeMessage(*m)
		m2, err := ParseMessage(ct2, b2, 4*limit)
		if err != nil {
			t.Fatalf("re-encoded message does not parse: %v", err)
		}
		if m2.Header.ID != m.Header.ID && strings.ToValidUTF8(m.Header.ID, "\uFFFD") == m.Header.ID {
			t.Errorf("ID: got %q, want %q", m2.Header.ID, m.Header.ID)
		}
	})
}

func FuzzScanSOAP(f *testing.F) {
	f.Add([]byte(soapEnvelope("SyncUpdates", nsClient, "<parameters><InstalledNonLeafUpdateIDs><int>1</int></InstalledNonLeafUpdateIDs><SkipSoftwareSync>true</SkipSoftwareSync></parameters>")))
	f.Add([]byte(soapEnvelope("GetExtendedUpdateInfo", nsClient, "<revisionIDs><int>5</int></revisionIDs>")))
	f.Add([]byte("<soap:Body><"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := scanSOAP(body)
		if len(req.Revisions) > maxListed || len(req.Digests) > maxListed {
			t.Fatalf("kept %d revisions, %d digests, past %d", len(req.Revisions), len(req.Digests), maxListed)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/300", "Bytes 5-5/6", "bytes 9-1/10", "bytes -1-2/3", "bytes 0-1/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		first, last, total, ok := parseContentRange(v)
		if ok && (first < 0 || last < first || total <= last) {
			t.Fatalf("%q: accepted %d-%d/%d", v, first, last, total)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tt := range []struct {
		name  string
		edit  func(*Config)
		paths []string
	}{
		{"site", func(c *Config) { c.Site.Code = "TOOLONG"; c.Site.MPName = "" }, []string{"site.code", "site.mp_name"}},
		{"TLS halves", func(c *Config) { c.TLS.CertFile = "x"; c.TLS.RequireClientCert = true }, []string{"tls", "tls.require_client_cert"}},
		{"sizes", func(c *Config) {
			c.Sizes.PolicyAssignmentsFull = 10
			c.Sizes.PolicyBody = SizeRange{Min: 50, Typical: 40, Max: 30}
		}, []string{"sizes.policy_assignments_full", "sizes.policy_body"}},
		{"limits", func(c *Config) { c.MaxBITSSessions = 0; c.MaxDelay = -1 }, []string{"max_delay", "max_bits_sessions"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			var ps *configfile.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want *configfile.Problems", err)
			}
			var got []string
			for _, p := range ps.List {
				got = append(got, p.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, tt.paths, err)
			}
			if _, err := New(c, nil); err == nil {
				t.Error("New accepted the bad config")
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	cfg := DefaultConfig()
	yaml := "seed: 7\nsite:\n  code: ABC\nsizes:\n  policy_body: {min: 1000, typical: 2000, max: 3000}\nshutdown_grace: 2s\n"
	if err := configfile.Decode("roles.yaml", []byte(yaml), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Seed != 7 || cfg.Site.Code != "ABC" || cfg.Sizes.PolicyBody.Max != 3000 || cfg.ShutdownGrace.String() != "2s" || cfg.Site.MPName == "" {
		t.Errorf("got %+v", cfg)
	}
	if err := configfile.Decode("roles.yaml", []byte("nope: 1\n"), &cfg); err == nil {
		t.Error("an unknown key was accepted")
	}
}
