package roles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Policy bodies (GET /SMS_MP/.sms_pol?<PolicyID>.SHA256:<hash>) and CI documents
// (GET /SMS_MP/.sms_dcm?Id&DocumentId=...&Compression=zlib), client-traffic.md
// section 1 rows "Policy body" and "CI / app docs": 5-100 KB and 10-100 KB [E], priced
// at 30 KB and 40 KB in section 6. Each document's size is drawn from its ID, so a
// policy is always the same bytes and the mean over many policies is the Typical size.

// policyCategories are categories a real site's machine policy carries.
var policyCategories = []string{
	"MachinePolicy", "ClientAgentConfig", "SoftwareUpdatesAgentConfig", "ComplianceAgentConfig",
	"SoftwareDistribution", "SiteSettings", "NAAConfig", "HardwareInventoryConfig",
	"SoftwareInventoryConfig", "EndpointProtectionConfig", "Sum", "DCM",
}

// policyID returns the ID of site policy i: GUIDs for agent settings, deployment IDs
// (DEP-<site>...) for deployments, as real assignments mix them.
func (s *Server) policyID(p *prng, i int) string {
	if i%3 == 2 {
		return "DEP-" + s.cfg.Site.Code + "2" + p.hex(4) + "-" + s.cfg.Site.Code + "1" + p.hex(4) + "-" + p.hex(8)
	}
	return p.guid()
}

// policyBodyText builds the policy document of id: UTF-16LE with a byte-order mark, as
// the MP stores policy, of an even size drawn from Sizes.PolicyBody.
func (s *Server) policyBodyText(id string) []byte {
	p := newPRNG(s.cfg.Seed, "policy body "+id)
	size := p.sizeIn(s.cfg.Sizes.PolicyBody) &^ 1
	head := `<?xml version="1.0" encoding="UTF-16"?>` + "\r\n" +
		`<Policy PolicyType="Machine" PolicyID="` + escAttr(id) + `" PolicyVersion="` + itoa(1+p.intn(40)) + `.00" PolicySource="SMS:` + s.cfg.Site.Code + `">` +
		`<PolicyRule PolicyRuleID="` + p.guid() + `"><PolicyAction PolicyActionType="WMI-XML"><![CDATA[`
	tail := "]]></PolicyAction></PolicyRule></Policy>\r\n"
	ascii := buildExact((size-2)/2, head, tail, p, policyInstance)
	out := make([]byte, 0, size)
	out = append(out, 0xFF, 0xFE)
	return appendUTF16ASCII(out, ascii)
}

var policyClasses = []string{
	"CCM_SoftwareDistribution", "CCM_Scheduler_ScheduledMessage", "CCM_UpdateSource",
	"CCM_SoftwareUpdatesClientConfig", "CCM_ComplianceEvaluationClientConfig",
	"CCM_ApplicationCIAssignment", "CCM_UpdateCIAssignment", "CCM_Policy_Property",
}

// policyInstance is one WMI instance of a policy action.
func policyInstance(b []byte, p *prng, i int) []byte {
	b = append(b, "\r\n<instance class=\""...)
	b = append(b, policyClasses[p.intn(len(policyClasses))]...)
	b = append(b, "\"><property name=\"PolicyID\" type=\"8\"><value>"...)
	b = append(b, p.guid()...)
	b = append(b, "</value></property><property name=\"PolicyInstanceID\" type=\"8\"><value>"...)
	b = append(b, p.guid()...)
	b = append(b, "</value></property><property name=\"Settings\" type=\"8\"><value>"...)
	b = p.appendHex(b, 64+p.intn(256))
	b = append(b, "</value></property><property name=\"Reserved"...)
	b = append(b, itoa(i)...)
	b = append(b, "\" type=\"19\"><value>"...)
	b = append(b, itoa(p.intn(1<<20))...)
	return append(b, "</value></property></instance>"...)
}

func (s *Server) servePolicyBody(w http.ResponseWriter, r *http.Request) {
	s.counters.kind(kindPolicyBody)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	id := policyIDFromQuery(r.URL.RawQuery)
	if id == "" {
		s.notFound(w)
		return
	}
	body := s.policyBodyText(id)
	serveBytes(w, r, "text/xml", body)
}

// policyIDFromQuery takes the policy ID out of "{ID}.SHA256:<hash>" (or the older
// "<ID>.<n>_00"), unescaping braces the way tools send them (%7B...%7D).
func policyIDFromQuery(raw string) string {
	q, err := url.QueryUnescape(raw)
	if err != nil {
		q = raw
	}
	if i := strings.Index(strings.ToUpper(q), ".SHA256:"); i >= 0 {
		return q[:i]
	}
	if i := strings.LastIndexByte(q, '.'); i > 0 {
		return q[:i]
	}
	return q
}

// serveBytes serves a generated document with Range and HEAD, as BITS downloads it.
func serveBytes(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	sum := sha256.Sum256(body)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	w.Header().Set("Accept-Ranges", "bytes")
	http.ServeContent(w, r, "", blobModTime, bytes.NewReader(body))
}

// ciDocument builds the CI document of docID: the XML digest of an application or
// configuration item, zlib-compressed when asked (what the client asks), sized from
// Sizes.CIDocument on the wire.
func (s *Server) ciDocument(docID string, compressed bool) []byte {
	p := newPRNG(s.cfg.Seed, "ci document "+docID)
	size := p.sizeIn(s.cfg.Sizes.CIDocument)
	base := *p
	head := `<?xml version="1.0" encoding="utf-8"?><DesiredConfigurationDigest xmlns="http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/07/10/DesiredConfiguration">` +
		`<Application AuthoringScopeId="ScopeId_` + p.guid()[1:37] + `" LogicalName="Application_` + p.guid()[1:37] + `" Version="` + itoa(1+p.intn(20)) + `">` +
		`<Annotation><DisplayName Text="` + escAttr(docID) + `"/></Annotation><Settings>`
	tail := "</Settings></Application></DesiredConfigurationDigest>"
	if !compressed {
		return buildExact(size, head, tail, p, ciSetting)
	}
	return compressedToSize(size, func(n int) []byte {
		q := base
		return buildExact(n, head, tail, &q, ciSetting)
	})
}

var ciHives = []string{`SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`, `SOFTWARE\Policies\Microsoft`, `SYSTEM\CurrentControlSet\Services`}

// ciSetting is one discovered setting of a CI document.
func ciSetting(b []byte, p *prng, i int) []byte {
	b = append(b, `<SimpleSetting LogicalName="RegSetting_`...)
	b = append(b, p.guid()[1:37]...)
	b = append(b, `" DataType="String"><Annotation><DisplayName Text="Setting `...)
	b = append(b, strconv.Itoa(i)...)
	b = append(b, `"/></Annotation><RegistryDiscoverySource Hive="HKEY_LOCAL_MACHINE" Depth="Base" Is64Bit="true"><Key>`...)
	b = append(b, ciHives[p.intn(len(ciHives))]...)
	b = append(b, `\{`...)
	b = append(b, p.guid()[1:37]...)
	b = append(b, `}</Key><ValueName>DisplayVersion</ValueName></RegistryDiscoverySource><Rule Id="Rule_`...)
	b = append(b, p.guid()[1:37]...)
	b = append(b, `" Hash="`...)
	b = p.appendHex(b, 64)
	return append(b, `"/></SimpleSetting>`...)
}

func (s *Server) serveCIDocument(w http.ResponseWriter, r *http.Request) {
	s.counters.kind(kindCIDocument)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	q := queryFold(r.URL.RawQuery)
	doc := q.Get("documentid")
	if doc == "" {
		s.notFound(w)
		return
	}
	compressed := strings.EqualFold(q.Get("compression"), "zlib")
	ct := "text/xml"
	if compressed {
		ct = "application/octet-stream"
	}
	serveBytes(w, r, ct, s.ciDocument(doc, compressed))
}

// queryFold parses a query with lower-cased keys: IIS applications read query keys
// without regard to case.
func queryFold(raw string) url.Values {
	q, _ := url.ParseQuery(raw)
	out := url.Values{}
	for k, v := range q {
		out[strings.ToLower(k)] = append(out[strings.ToLower(k)], v...)
	}
	return out
}
