package roles

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func soapEnvelope(op, ns, inner string) string {
	return `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><` +
		op + ` xmlns="` + ns + `">` + inner + `</` + op + `></soap:Body></soap:Envelope>`
}

func TestSUPWebServices(t *testing.T) {
	s, base := startServer(t, DefaultConfig())
	c := newClient(t)
	z := DefaultSizes()
	cws := "/sup/ClientWebService/client.asmx"
	cached := "<InstalledNonLeafUpdateIDs><int>1</int><int>2</int></InstalledNonLeafUpdateIDs><OtherCachedUpdateIDs><int>3</int></OtherCachedUpdateIDs>"
	revs := "<revisionIDs><int>101</int><int>102</int><int>103</int></revisionIDs><infoTypes><XmlUpdateFragmentType>Extended</XmlUpdateFragmentType></infoTypes>"
	digests := "<fileDigests><base64Binary>AAAA</base64Binary><base64Binary>BBBB</base64Binary></fileDigests>"
	tests := []struct {
		name, path, action, op, ns, inner string
		wantCode                          int
		wantKind                          string
		wantSize                          int // exact; 0: not checked
		contains                          string
	}{
		{"GetConfig", cws, nsClient + "/GetConfig", "GetConfig", nsClient, "<protocolVersion>1.20</protocolVersion>", 200, kindSUPGetConfig, z.GetConfigReply, "<PlugInID>SimpleTargeting</PlugInID>"},
		{"GetAuthorizationCookie", "/sup/SimpleAuthWebService/SimpleAuth.asmx", nsAuth + "/GetAuthorizationCookie", "GetAuthorizationCookie", nsAuth, "<clientId>x</clientId>", 200, kindSUPAuthCookie, z.AuthorizationCookieReply, "<CookieData>"},
		{"GetCookie", cws, nsClient + "/GetCookie", "GetCookie", nsClient, "", 200, kindSUPGetCookie, z.GetCookieReply, "<EncryptedData>"},
		{"RegisterComputer", cws, nsClient + "/RegisterComputer", "RegisterComputer", nsClient, "", 200, kindSUPRegister, z.RegisterComputerReply, "RegisterComputerResponse"},
		{"SyncUpdates first scan", cws, nsClient + "/SyncUpdates", "SyncUpdates", nsClient, "<parameters><ExpressQuery>false</ExpressQuery></parameters>", 200, kindSUPSync, z.SyncUpdatesFirstReply, "<NewUpdates><UpdateInfo>"},
		{"SyncUpdates delta scan", cws, nsClient + "/SyncUpdates", "SyncUpdates", nsClient, "<parameters>" + cached + "</parameters>", 200, kindSUPSync, z.SyncUpdatesDeltaReply, "<ChangedUpdates>"},
		{"SyncUpdates drivers", cws, nsClient + "/SyncUpdates", "SyncUpdates", nsClient, "<parameters>" + cached + "<SkipSoftwareSync>true</SkipSoftwareSync></parameters>", 200, kindSUPSync, z.SyncUpdatesDriverReply, "<NewUpdates>"},
		{"GetExtendedUpdateInfo", cws, nsClient + "/GetExtendedUpdateInfo", "GetExtendedUpdateInfo", nsClient, revs, 200, kindSUPExtended, 0, "<Update><ID>103</ID>"},
		{"GetFileLocations", cws, nsClient + "/GetFileLocations", "GetFileLocations", nsClient, digests, 200, kindSUPFiles, 0, "/Content/"},
		{"ReportEventBatch", "/sup/ReportingWebService/ReportingWebService.asmx", nsReporting + "/ReportEventBatch", "ReportEventBatch", nsReporting, "<eventBatch/>", 200, kindSUPReport, z.ReportEventBatchReply, "<ReportEventBatchResult>true"},
		{"operation from the body without SOAPAction", cws, "", "GetCookie", nsClient, "", 200, kindSUPGetCookie, z.GetCookieReply, "GetCookieResult"},
		{"unknown operation is a SOAP fault", cws, nsClient + "/Nope", "Nope", nsClient, "", 500, kindSUPOther, 0, "soap:Fault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().Kinds[tt.wantKind]
			hdr := map[string]string{"Content-Type": "text/xml; charset=utf-8", "User-Agent": "Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.71"}
			if tt.action != "" {
				hdr["SOAPAction"] = `"` + tt.action + `"`
			}
			resp, b := do(t, c, "POST", base+tt.path, strings.NewReader(soapEnvelope(tt.op, tt.ns, tt.inner)), hdr)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantSize > 0 && len(b) != tt.wantSize {
				t.Errorf("got %d bytes, want exactly %d", len(b), tt.wantSize)
			}
			if !bytes.Contains(b, []byte(tt.contains)) {
				t.Errorf("got %.300s, want it to contain %q", b, tt.contains)
			}
			if err := wellFormed(string(b)); err != nil {
				t.Errorf("not XML: %v", err)
			}
			if got := s.Stats().Kinds[tt.wantKind]; got != before+1 {
				t.Errorf("kind %s: got %d, want %d", tt.wantKind, got, before+1)
			}
		})
	}
	t.Run("extended info scales with revisions", func(t *testing.T) {
		one := s.extendedInfoReply(soapRequest{Revisions: []string{"1"}})
		three := s.extendedInfoReply(soapRequest{Revisions: []string{"1", "2", "3"}})
		if got := len(three) - len(one); got != 2*z.ExtendedInfoPerRevision {
			t.Errorf("two more revisions: got %d more bytes, want %d", got, 2*z.ExtendedInfoPerRevision)
		}
	})
	t.Run("delta scan totals ~15 KB down in 4 calls", func(t *testing.T) {
		down := z.GetCookieReply + 2*z.SyncUpdatesDeltaReply + z.SyncUpdatesDriverReply
		if down < 13000 || down > 17000 {
			t.Errorf("got %d bytes, want ~15 KB (client-traffic.md section 6)", down)
		}
	})
	t.Run("GET on a web service is refused", func(t *testing.T) {
		resp, _ := do(t, c, "GET", base+cws, nil, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("got %d, want 405", resp.StatusCode)
		}
	})
}

func TestSUPFiles(t *testing.T) {
	_, base := startServer(t, DefaultConfig())
	c := newClient(t)
	resp, cab := do(t, c, "GET", base+"/sup/selfupdate/WUIDENT.CAB", nil, nil)
	if resp.StatusCode != 200 || len(cab) != DefaultSizes().SelfUpdateCab || !bytes.HasPrefix(cab, []byte("MSCF")) {
		t.Fatalf("wuident.cab: got %d, %d bytes %q, want 200, %d bytes starting MSCF", resp.StatusCode, len(cab), cab[:min(4, len(cab))], DefaultSizes().SelfUpdateCab)
	}
	head, _ := do(t, c, "HEAD", base+"/sup/SelfUpdate/wuident.cab", nil, nil)
	if head.ContentLength != int64(len(cab)) || head.Header.Get("Last-Modified") == "" {
		t.Errorf("HEAD wuident.cab: got length %d, Last-Modified %q", head.ContentLength, head.Header.Get("Last-Modified"))
	}
	url := base + "/sup/Content/3F/0123456789ABCDEF0123456789ABCDEF0123453F.cab"
	head, _ = do(t, c, "HEAD", url, nil, nil)
	r := DefaultSizes().Content
	if head.ContentLength < int64(r.Min) || head.ContentLength > int64(r.Max) {
		t.Fatalf("content HEAD: got length %d, want in [%d, %d]", head.ContentLength, r.Min, r.Max)
	}
	resp, part := do(t, c, "GET", url, nil, map[string]string{"Range": "bytes=1000-1999"})
	if resp.StatusCode != 206 || len(part) != 1000 {
		t.Fatalf("ranged GET: got %d, %d bytes, want 206, 1000", resp.StatusCode, len(part))
	}
	_, tail := do(t, c, "GET", url, nil, map[string]string{"Range": "bytes=1500-2499"})
	if !bytes.Equal(part[500:], tail[:500]) {
		t.Error("overlapping ranges disagree")
	}
}
