package roles

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"io"
	"net/http"
	"path"
	"strings"
)

// The software update point: WSUS's web services (MS-WUSP) as a CM client's Windows
// Update Agent calls them, client-traffic.md section 2. Sizes: a delta scan is ~90 KB
// up / ~15 KB down over 4 SOAP calls (section 6 "SUP delta scan"): GetCookie 1 KB +
// SyncUpdates (software, 2 iterations) 2 x 6 KB + SyncUpdates (drivers) 2 KB = 15 KB.
// Xpress compression (Accept-Encoding: xpress) is not done: replies are identity.

// WSUS namespaces.
const (
	nsClient    = "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService"
	nsAuth      = "http://www.microsoft.com/SoftwareDistribution/Server/SimpleAuthWebService"
	nsReporting = "http://www.microsoft.com/SoftwareDistribution"
)

const soapHead = `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>`
const soapTail = `</soap:Body></soap:Envelope>`

// serveSUP dispatches a request under /sup/.
func (s *Server) serveSUP(w http.ResponseWriter, r *http.Request, rest, lower string) {
	if lower == "/healthz" {
		s.serveHealth(w, RoleSUP)
		return
	}
	if s.serveHelper(w, r, RoleSUP, lower) {
		return
	}
	switch {
	case lower == "/clientwebservice/client.asmx", lower == "/simpleauthwebservice/simpleauth.asmx",
		lower == "/reportingwebservice/reportingwebservice.asmx":
		s.serveSOAP(w, r)
	case lower == "/selfupdate/wuident.cab":
		s.counters.kind(kindSUPSelfUpdate)
		if !getOrHead(w, r) {
			return
		}
		serveBytes(w, r, "application/vnd.ms-cab-compressed", s.cab)
	case r.Method == "PROPFIND":
		s.counters.kind(kindSUPPropfind)
		servePropfind(w, r, rest)
	case strings.HasPrefix(lower, "/content/") && path.Ext(lower) != "":
		s.counters.kind(kindSUPContent)
		if !getOrHead(w, r) {
			return
		}
		p := newPRNG(s.cfg.Seed, "content "+lower)
		serveGenerated(w, r, contentType(lower), s.cfg.Seed^keyHash(lower), int64(p.sizeIn(s.cfg.Sizes.Content)))
	default:
		s.notFound(w)
	}
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return false
	}
	return true
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".cab":
		return "application/vnd.ms-cab-compressed"
	case ".xml":
		return "text/xml"
	}
	return "application/octet-stream"
}

// soapRequest is what the SUP needs from a SOAP request body.
type soapRequest struct {
	Operation string
	CachedIDs int      // revision IDs the client already has (SyncUpdates)
	SkipSW    bool     // SkipSoftwareSync: the driver pass of SyncUpdates
	Revisions []string // revisionIDs (GetExtendedUpdateInfo)
	Digests   []string // fileDigests (GetFileLocations)
}

// maxListed bounds the IDs kept from one request.
const maxListed = 1 << 14

// scanSOAP reads the operation (the first element inside soap:Body) and the lists the
// replies depend on, in one streaming pass.
func scanSOAP(body []byte) soapRequest {
	var req soapRequest
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = false
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var stack []string
	inBody := false
	for range 1 << 22 {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if inBody && req.Operation == "" {
				req.Operation = name
			}
			if name == "Body" {
				inBody = true
			}
			stack = append(stack, name)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) < 2 {
				continue
			}
			el, parent := stack[len(stack)-1], stack[len(stack)-2]
			v := strings.TrimSpace(string(t))
			switch {
			case el == "int" && (parent == "InstalledNonLeafUpdateIDs" || parent == "OtherCachedUpdateIDs" || parent == "CachedDriverIDs"):
				req.CachedIDs++
			case el == "int" && parent == "revisionIDs" && len(req.Revisions) < maxListed:
				req.Revisions = append(req.Revisions, v)
			case el == "base64Binary" && parent == "fileDigests" && len(req.Digests) < maxListed:
				req.Digests = append(req.Digests, v)
			case el == "SkipSoftwareSync":
				req.SkipSW = strings.EqualFold(v, "true")
			}
		}
	}
	return req
}

// soapOperation is the operation named by the SOAPAction header (its last path
// segment), or else the first element of the body.
func soapOperation(action string, req soapRequest) string {
	action = strings.Trim(strings.TrimSpace(action), `"`)
	if i := strings.LastIndexByte(action, '/'); i >= 0 && i < len(action)-1 {
		return action[i+1:]
	}
	return req.Operation
}

func (s *Server) serveSOAP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxSOAPBytes+1))
	if err != nil {
		return
	}
	if int64(len(raw)) > s.cfg.MaxSOAPBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	req := scanSOAP(raw)
	op := soapOperation(r.Header.Get("SOAPAction"), req)
	body, kind := s.soapReply(op, req)
	s.counters.kind(kind)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("X-Powered-By", "ASP.NET")
	w.Header().Set("X-AspNet-Version", "4.0.30319")
	w.Header().Set("Cache-Control", "private")
	w.Header().Set("Content-Length", itoa(len(body)))
	if kind == kindSUPOther {
		w.WriteHeader(http.StatusInternalServerError) // a SOAP fault goes with 500
	}
	_, _ = w.Write(body)
}

// soapReply builds the reply to op and names its kind.
func (s *Server) soapReply(op string, req soapRequest) ([]byte, string) {
	z := s.cfg.Sizes
	p := newPRNG(s.cfg.Seed, "soap "+op)
	switch op {
	case "GetConfig":
		return s.getConfigReply(p, z.GetConfigReply), kindSUPGetConfig
	case "GetAuthorizationCookie":
		return cookieReply(p, nsAuth, "GetAuthorizationCookie",
			`<PlugInId>SimpleTargeting</PlugInId><CookieData>`, `</CookieData>`, z.AuthorizationCookieReply), kindSUPAuthCookie
	case "GetCookie":
		return cookieReply(p, nsClient, "GetCookie",
			`<Expiration>`+s.expiry()+`</Expiration><EncryptedData>`, `</EncryptedData>`, z.GetCookieReply), kindSUPGetCookie
	case "RegisterComputer":
		return padded(z.RegisterComputerReply, soapHead+`<RegisterComputerResponse xmlns="`+nsClient+`">`, `</RegisterComputerResponse>`+soapTail), kindSUPRegister
	case "SyncUpdates":
		return s.syncUpdatesReply(req), kindSUPSync
	case "GetExtendedUpdateInfo":
		return s.extendedInfoReply(req), kindSUPExtended
	case "GetFileLocations":
		return s.fileLocationsReply(req), kindSUPFiles
	case "ReportEventBatch":
		return padded(z.ReportEventBatchReply, soapHead+`<ReportEventBatchResponse xmlns="`+nsReporting+`"><ReportEventBatchResult>true</ReportEventBatchResult>`,
			`</ReportEventBatchResponse>`+soapTail), kindSUPReport
	case "StartCategoryScan", "RefreshCache", "GetTimestamps":
		return []byte(soapHead + `<` + op + `Response xmlns="` + nsClient + `"><` + op + `Result/></` + op + `Response>` + soapTail), kindSUPOther
	}
	return []byte(soapHead + `<soap:Fault><faultcode>soap:Client</faultcode><faultstring>Server did not recognize the value of HTTP Header SOAPAction: ` +
		escText(op) + `.</faultstring><detail/></soap:Fault>` + soapTail), kindSUPOther
}

// expiry is a cookie expiration a few days from now, as WSUS hands out.
func (s *Server) expiry() string {
	return s.now().UTC().AddDate(0, 0, 5).Format("2006-01-02T15:04:05Z")
}

func (s *Server) getConfigReply(p *prng, size int) []byte {
	head := soapHead + `<GetConfigResponse xmlns="` + nsClient + `"><GetConfigResult><LastChange>` + blobModTime.Format("2006-01-02T15:04:05.000Z") +
		`</LastChange><IsRegistrationRequired>true</IsRegistrationRequired><AuthInfo><AuthPlugInInfo><PlugInID>SimpleTargeting</PlugInID>` +
		`<ServiceUrl>SimpleAuthWebService/SimpleAuth.asmx</ServiceUrl><Parameter/></AuthPlugInInfo></AuthInfo><AllowedEventIds>`
	tail := `</AllowedEventIds><Properties><ConfigurationProperty><Name>MaxExtendedUpdatesPerRequest</Name><Value>50</Value></ConfigurationProperty>` +
		`<ConfigurationProperty><Name>PackageServerShare</Name><Value/></ConfigurationProperty><ConfigurationProperty><Name>ProtocolVersion</Name><Value>1.20</Value></ConfigurationProperty>` +
		`</Properties></GetConfigResult></GetConfigResponse>` + soapTail
	return buildExact(size, head, tail, p, func(b []byte, _ *prng, i int) []byte {
		b = append(b, "<int>"...)
		b = append(b, itoa(100+i)...)
		return append(b, "</int>"...)
	})
}

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// appendB64 appends four random base64 characters.
func appendB64(b []byte, p *prng, _ int) []byte {
	v := p.next()
	for range 4 {
		b = append(b, b64chars[v&63])
		v >>= 6
	}
	return b
}

// cookieReply is a reply carrying an opaque base64 cookie that fills it to size.
func cookieReply(p *prng, ns, op, before, after string, size int) []byte {
	head := soapHead + `<` + op + `Response xmlns="` + ns + `"><` + op + `Result>` + before
	tail := after + `</` + op + `Result></` + op + `Response>` + soapTail
	return buildExact(size, head, tail, p, appendB64)
}

// syncUpdatesReply: a first scan (no cached revisions) gets NewUpdates of
// SyncUpdatesFirstReply bytes; a delta scan gets ChangedUpdates of
// SyncUpdatesDeltaReply; the driver pass SyncUpdatesDriverReply [WSUSOD 3.3-3.4].
func (s *Server) syncUpdatesReply(req soapRequest) []byte {
	z := s.cfg.Sizes
	list, size, key := "ChangedUpdates", z.SyncUpdatesDeltaReply, "delta"
	switch {
	case req.SkipSW:
		list, size, key = "NewUpdates", z.SyncUpdatesDriverReply, "driver"
	case req.CachedIDs == 0:
		list, size, key = "NewUpdates", z.SyncUpdatesFirstReply, "first"
	}
	p := newPRNG(s.cfg.Seed, "sync updates "+key)
	head := soapHead + `<SyncUpdatesResponse xmlns="` + nsClient + `"><SyncUpdatesResult><` + list + `>`
	tail := `</` + list + `><OutOfScopeRevisionIDs/><Truncated>false</Truncated><NewCookie><Expiration>` + s.expiry() +
		`</Expiration><EncryptedData>` + p.hex(96) + `</EncryptedData></NewCookie><DriverSyncNotNeeded>false</DriverSyncNotNeeded></SyncUpdatesResult></SyncUpdatesResponse>` + soapTail
	return buildExact(size, head, tail, p, updateInfo)
}

// updateInfo is one UpdateInfo of a SyncUpdates reply: the revision, its deployment
// and the core XML fragment (escaped, as WSUS sends it).
func updateInfo(b []byte, p *prng, _ int) []byte {
	rev := itoa(100000 + p.intn(900000))
	b = append(b, "<UpdateInfo><ID>"...)
	b = append(b, rev...)
	b = append(b, "</ID><Deployment><ID>"...)
	b = append(b, itoa(10000+p.intn(90000))...)
	b = append(b, "</ID><Action>Install</Action><IsAssigned>true</IsAssigned><LastChangeTime>2024-03-12</LastChangeTime><AutoSelect>0</AutoSelect><AutoDownload>0</AutoDownload><SupersedenceBehavior>0</SupersedenceBehavior></Deployment><IsLeaf>true</IsLeaf><Xml>&lt;UpdateIdentity UpdateID=\""...)
	b = append(b, strings.ToLower(guidBare(p))...)
	b = append(b, "\" RevisionNumber=\""...)
	b = append(b, itoa(100+p.intn(200))...)
	b = append(b, "\" /&gt;&lt;Properties UpdateType=\"Software\" /&gt;&lt;Relationships&gt;&lt;Prerequisites&gt;&lt;UpdateIdentity UpdateID=\""...)
	b = append(b, strings.ToLower(guidBare(p))...)
	b = append(b, "\" /&gt;&lt;/Prerequisites&gt;&lt;/Relationships&gt;</Xml></UpdateInfo>"...)
	return b
}

// extendedInfoReply gives ExtendedInfoPerRevision bytes per revision asked (the
// patch-cycle metadata row of section 6: ~8 MB in 20 calls).
func (s *Server) extendedInfoReply(req soapRequest) []byte {
	per := s.cfg.Sizes.ExtendedInfoPerRevision
	revs := req.Revisions
	if len(revs) == 0 {
		revs = []string{"0"}
	}
	b := []byte(soapHead + `<GetExtendedUpdateInfoResponse xmlns="` + nsClient + `"><GetExtendedUpdateInfoResult><Updates>`)
	for _, rev := range revs {
		rev = escText(rev)
		p := newPRNG(s.cfg.Seed, "extended "+rev)
		b = append(b, buildExact(per, `<Update><ID>`+rev+`</ID><Xml>&lt;ExtendedProperties DefaultPropertiesLanguage="en" MsrcSeverity="Important" /&gt;&lt;Files&gt;`,
			`&lt;/Files&gt;</Xml></Update>`, p, fileFragment)...)
	}
	b = append(b, `</Updates></GetExtendedUpdateInfoResult></GetExtendedUpdateInfoResponse>`+soapTail...)
	return b
}

// fileFragment is one file of an update's extended XML (escaped).
func fileFragment(b []byte, p *prng, _ int) []byte {
	b = append(b, `&lt;File Digest="`...)
	for range 7 {
		b = appendB64(b, p, 0)
	}
	b = append(b, `=" FileName="windows10.0-kb`...)
	b = append(b, itoa(5000000+p.intn(99999))...)
	b = append(b, `-x64.cab" Size="`...)
	b = append(b, itoa(1000000+p.intn(1<<28))...)
	return append(b, `" /&gt;`...)
}

// fileLocationsReply gives FileLocationsPerFile bytes per digest asked: the URL of
// each file under the SUP's /Content/.
func (s *Server) fileLocationsReply(req soapRequest) []byte {
	b := []byte(soapHead + `<GetFileLocationsResponse xmlns="` + nsClient + `"><GetFileLocationsResult><FileLocations>`)
	for _, d := range req.Digests {
		p := newPRNG(s.cfg.Seed, "file "+d)
		h := p.hex(40)
		url := strings.TrimRight(s.cfg.Site.SUPURL, "/") + "/Content/" + h[38:] + "/" + h + ".cab"
		b = append(b, padded(s.cfg.Sizes.FileLocationsPerFile,
			`<FileLocation><FileDigest>`+escText(d)+`</FileDigest><Url>`+escText(url)+`</Url>`, `</FileLocation>`)...)
	}
	b = append(b, `</FileLocations></GetFileLocationsResult></GetFileLocationsResponse>`+soapTail...)
	return b
}

// selfUpdateCab is the generated /SelfUpdate/wuident.cab: a cabinet header (MSCF)
// then deterministic bytes, size bytes in all.
func selfUpdateCab(seed uint64, size int) []byte {
	b := make([]byte, size)
	fillBlob(seed^keyHash("wuident.cab"), 0, b)
	if size >= 36 {
		copy(b, "MSCF")
		binary.LittleEndian.PutUint32(b[4:], 0)
		binary.LittleEndian.PutUint32(b[8:], uint32(size)) // cbCabinet
		binary.LittleEndian.PutUint32(b[12:], 0)
		binary.LittleEndian.PutUint32(b[16:], 44) // coffFiles
		binary.LittleEndian.PutUint32(b[20:], 0)
		b[24], b[25] = 3, 1 // version 1.3
		binary.LittleEndian.PutUint16(b[26:], 1)
		binary.LittleEndian.PutUint16(b[28:], 1)
		binary.LittleEndian.PutUint16(b[30:], 0)
		binary.LittleEndian.PutUint16(b[32:], uint16(seed))
		binary.LittleEndian.PutUint16(b[34:], 0)
	}
	return b
}
