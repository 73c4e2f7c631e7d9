package device

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// The request bodies a Configuration Manager client sends (client-traffic.md
// sections 1 and 2), built to the class's size. Each body has a natural
// repeated part (state messages, inventory instances, cached revision IDs);
// the number of repetitions is calibrated once per target size so that the
// encoded body lands within a few percent of it.

// rnd is a per-goroutine generator for message content.
type rnd struct{ r *rand.Rand }

func newRnd(seed uint64) *rnd { return &rnd{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

const hexDigits = "0123456789ABCDEF"

func (g *rnd) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = hexDigits[g.r.IntN(16)]
	}
	return string(b)
}

func (g *rnd) guid() string {
	h := g.hex(32)
	return "{" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32] + "}"
}

func (g *rnd) bytes(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := g.r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// client is what a device says about itself in messages.
type client struct {
	smsid   string // GUID:...
	netbios string
	fqdn    string
}

// ccmHeader is the <Msg> header of a client message: the clientauth hook with
// the device's CAPI public key blob (RSA-2048: 276 bytes, hex) and the
// signatures of its client ID and payload (256 bytes each, hex) [MSF][SCH].
func ccmHeader(g *rnd, c client, endpoint, mode string, target string) roles.MessageHeader {
	return roles.MessageHeader{
		ReplyCompression: "zlib",
		SchemaVersion:    "1.1",
		Compressed:       true,
		ClientAuth: []roles.HookProperty{
			{Name: "AuthSenderMachine", Value: c.netbios},
			{Name: "PublicKey", Value: "0602000000A40000525341310008000001000100" + g.hex(512)},
			{Name: "ClientIDSignature", Value: g.hex(512)},
			{Name: "PayloadSignature", Value: g.hex(512)},
			{Name: "ClientCapabilities", Value: "NonSSL"},
			{Name: "HashAlgorithm", Value: "1.2.840.113549.1.1.11"},
		},
		ID:             g.guid(),
		Priority:       0,
		ReplyMode:      mode,
		ReplyTo:        "direct:" + c.netbios + ":SccmMessaging",
		SentTime:       "2024-05-01T12:00:00Z",
		SourceID:       c.smsid,
		SourceHost:     c.netbios,
		TargetAddress:  "mp:" + endpoint,
		TargetEndpoint: endpoint,
		TargetHost:     target,
		Timeout:        60000,
	}
}

// bodyFunc builds a message body with n repeated records.
type bodyFunc func(g *rnd, c client, n int) string

// messageSpec is one kind of client message.
type messageSpec struct {
	endpoint string
	mode     string // Sync or Async
	body     bodyFunc
}

// calibration caches the record count that brings a spec to a size.
type calibration struct {
	mu sync.Mutex
	n  map[string]int
}

var calibrated = &calibration{n: map[string]int{}}

// records finds the record count whose encoded message is closest to size.
func (cal *calibration) records(key string, spec messageSpec, size int) int {
	cal.mu.Lock()
	defer cal.mu.Unlock()
	ck := key + "/" + strconv.Itoa(size)
	if n, ok := cal.n[ck]; ok {
		return n
	}
	g := newRnd(1)
	c := client{smsid: "GUID:8B7B6A3C-2F14-4C55-9E51-2D3F0C1A9B77", netbios: "DESKTOP-0A1B2C3D", fqdn: "desktop-0a1b2c3d.corp.example.com"}
	measure := func(n int) int {
		_, b := roles.EncodeMessage(roles.Message{Header: ccmHeader(g, c, spec.endpoint, spec.mode, "mp01"), Body: spec.body(g, c, n)})
		return len(b)
	}
	lo, hi := 0, 1
	for measure(hi) < size && hi < 1<<20 {
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if measure(mid) < size {
			lo = mid
		} else {
			hi = mid
		}
	}
	n := hi
	if lo > 0 && size-measure(lo) < measure(hi)-size {
		n = lo
	}
	cal.n[ck] = n
	return n
}

// buildMessage encodes a message of spec close to size bytes.
func buildMessage(g *rnd, c client, key string, spec messageSpec, size int, mpHost string) (contentType string, body []byte) {
	n := calibrated.records(key, spec, size)
	return roles.EncodeMessage(roles.Message{Header: ccmHeader(g, c, spec.endpoint, spec.mode, mpHost), Body: spec.body(g, c, n)})
}

func identification(c client) string {
	return `<Identification><Machine><ClientID>` + c.smsid + `</ClientID><FQDN>` + c.fqdn + `</FQDN><NetBIOSName>` + c.netbios + `</NetBIOSName><SID /></Machine></Identification>`
}

// policyRequest is RequestAssignments [SDK07][MSF]: the resource and the cookie
// of the last reply, so the MP answers only changes. The repeated part is the
// hashes of the policies the client holds (ValidationRequested=CRC).
func policyRequest(resource, cookie string) bodyFunc {
	return func(g *rnd, c client, n int) string {
		var b strings.Builder
		b.WriteString(`<RequestAssignments SchemaVersion="1.00" ACK="false" RequestType="Always">` + identification(c))
		b.WriteString(`<PolicySource>SMS:PS1</PolicySource><Resource ResourceType="` + resource + `" />`)
		if cookie != "" {
			b.WriteString(`<ServerCookie>` + cookie + `</ServerCookie>`)
		}
		b.WriteString(`<ValidationRequested>CRC</ValidationRequested><Validations>`)
		for range n {
			b.WriteString(`<Validation PolicyID="` + g.guid() + `" CRC="` + g.hex(8) + `"/>`)
		}
		b.WriteString(`</Validations></RequestAssignments>`)
		return b.String()
	}
}

// report is an inventory or state Report [IMP][SDK07][TSUC] with n records.
func report(content, actionID string, record func(g *rnd, b *strings.Builder)) bodyFunc {
	return func(g *rnd, c client, n int) string {
		var b strings.Builder
		b.WriteString(`<Report><ReportHeader>` + identification(c) + `<ReportDetails><ReportContent>` + content +
			`</ReportContent><ReportType>Full</ReportType><Date>20240501120000.000000+000</Date><Version>1.0</Version><Format>1.0</Format></ReportDetails>`)
		if actionID != "" {
			b.WriteString(`<InventoryAction ActionType="Predefined"><InventoryActionID>` + actionID + `</InventoryActionID><Description>` + content + `</Description></InventoryAction>`)
		}
		b.WriteString(`</ReportHeader><ReportBody>`)
		for range n {
			record(g, &b)
		}
		b.WriteString(`</ReportBody></Report>`)
		return b.String()
	}
}

func stateRecord(g *rnd, b *strings.Builder) {
	b.WriteString(`<StateMessage MessageTime="20240501120000.000" SerialNumber="` + strconv.Itoa(g.r.IntN(1<<20)) + `"><Topic ID="` + g.guid() +
		`" Type="500" IDType="3"/><State ID="` + strconv.Itoa(g.r.IntN(4)) + `" Criticality="0"/><UserParameters Flags="0" Count="1"><Param>` + g.hex(40) + `</Param></UserParameters></StateMessage>`)
}

func statusRecord(g *rnd, b *strings.Builder) {
	b.WriteString(`<StatusMessage ModuleName="SMS Client" Component="` + []string{"Software Distribution", "Software Updates", "Inventory Agent", "Policy Agent"}[g.r.IntN(4)] +
		`" MessageID="` + strconv.Itoa(10000+g.r.IntN(9000)) + `" Severity="1073741824" Time="` + g.hex(12) + `"><InsertionString>` + g.hex(48) + `</InsertionString><Property Name="AdvertisementID" Value="PS1` + g.hex(5) + `"/></StatusMessage>`)
}

func instanceRecord(class string) func(g *rnd, b *strings.Builder) {
	return func(g *rnd, b *strings.Builder) {
		b.WriteString(`<Instance ParentClass="` + class + `" Class="` + class + `" Namespace="\\DESKTOP\root\cimv2" Content="New"><` + class + `><Name>` + g.hex(16) +
			`</Name><Version>` + strconv.Itoa(g.r.IntN(100)) + `.` + strconv.Itoa(g.r.IntN(10000)) + `</Version><Value>` + g.hex(32) + `</Value></` + class + `></Instance>`)
	}
}

func locationRequest(root string) bodyFunc {
	return func(g *rnd, c client, n int) string {
		var b strings.Builder
		b.WriteString(`<` + root + ` SchemaVersion="1.00">` + identification(c) + `<AssignedSite SiteCode="PS1"/><ClientLocationInfo LocationType="SMSUpdate" DistributeOnDemand="0" UseProtected="0" AllowCaching="0" BranchDPFlags="0" AllowHTTP="1" AllowSMB="0" AllowMulticast="0" UseInternetDP="1" UseAzure="1">`)
		b.WriteString(`<ADSite Name="Default-First-Site-Name"/><Forest Name="corp.example.com"/><Domain Name="corp.example.com"/><IPAddresses>`)
		for range n {
			b.WriteString(`<IPAddress SubnetAddress="10.` + strconv.Itoa(g.r.IntN(256)) + `.` + strconv.Itoa(g.r.IntN(256)) + `.0" Address="10.` + strconv.Itoa(g.r.IntN(256)) + `.` + strconv.Itoa(g.r.IntN(256)) + `.` + strconv.Itoa(g.r.IntN(256)) + `"/>`)
		}
		b.WriteString(`</IPAddresses></ClientLocationInfo></` + root + `>`)
		return b.String()
	}
}

// The messages of the kinds that send one.
var (
	specState    = messageSpec{"MP_RelayEndpoint", "Async", report("State Message Data", "", stateRecord)}
	specStatus   = messageSpec{"MP_StatusManager", "Async", report("Status Message Data", "", statusRecord)}
	specDDR      = messageSpec{"MP_DdrEndpoint", "Async", report("Inventory Data", "{00000000-0000-0000-0000-000000000003}", instanceRecord("System_DISC"))}
	specMetering = messageSpec{"MP_SinvEndpoint", "Async", report("Software Metering Usage", "", instanceRecord("SoftwareMeteringUsageReport"))}
	specScript   = messageSpec{"MP_RelayEndpoint", "Async", report("Script Execution Result", "", instanceRecord("ScriptResult"))}
	specLocation = messageSpec{"MP_LocationManager", "Sync", locationRequest("ContentLocationRequest")}
	specWSUSLoc  = messageSpec{"MP_LocationManager", "Sync", locationRequest("WSUSLocationRequest")}
)

func policySpec(resource, cookie string) messageSpec {
	return messageSpec{"MP_PolicyManager", "Sync", policyRequest(resource, cookie)}
}

// soapEnvelope wraps a SOAP 1.1 body as the Windows Update Agent sends it.
func soapEnvelope(inner string) string {
	return `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>` +
		inner + `</soap:Body></soap:Envelope>`
}

const nsClient = "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService"

// intList is n revision IDs as <int> elements.
func intList(g *rnd, n int) string {
	var b strings.Builder
	b.Grow(n * 17)
	for range n {
		b.WriteString("<int>" + strconv.Itoa(100000+g.r.IntN(900000)) + "</int>")
	}
	return b.String()
}

// cookieXML is the cookie a WSUS client sends back.
func cookieXML(g *rnd) string {
	return `<cookie><Expiration>2024-05-06T12:00:00Z</Expiration><EncryptedData>` + base64ish(g, 600) + `</EncryptedData></cookie>`
}

func base64ish(g *rnd, n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[g.r.IntN(64)]
	}
	return string(b)
}

// getCookieSOAP is GetCookie with the old cookie [WUSP 3.1.5].
func getCookieSOAP(g *rnd) string {
	return soapEnvelope(`<GetCookie xmlns="` + nsClient + `"><authCookies><AuthorizationCookie><PlugInId>SimpleTargeting</PlugInId><CookieData>` +
		base64ish(g, 240) + `</CookieData></AuthorizationCookie></authCookies><oldCookie>` + base64ish(g, 120) +
		`</oldCookie><lastChange>2024-04-30T12:00:00Z</lastChange><currentTime>2024-05-01T12:00:00Z</currentTime><protocolVersion>1.20</protocolVersion></GetCookie>`)
}

// syncUpdatesSOAP is SyncUpdates sending back the cached revision IDs (a delta
// scan, so requests grow with the catalog [WSUSOD 3.4]); drivers=true is the
// driver pass. size is the body size to reach.
func syncUpdatesSOAP(g *rnd, drivers bool, size int) string {
	head := `<SyncUpdates xmlns="` + nsClient + `">` + cookieXML(g) + `<parameters><ExpressQuery>false</ExpressQuery>`
	tail := `<SkipSoftwareSync>` + strconv.FormatBool(drivers) + `</SkipSoftwareSync><NeedTwoGroupOutOfScopeUpdates>true</NeedTwoGroupOutOfScopeUpdates></parameters></SyncUpdates>`
	list := "OtherCachedUpdateIDs"
	if drivers {
		list = "CachedDriverIDs"
	}
	fixed := len(soapEnvelope(head+tail)) + 2*len(list) + 5 + len("<InstalledNonLeafUpdateIDs></InstalledNonLeafUpdateIDs>")
	n := max(1, (size-fixed)/17)
	installed := n / 4
	return soapEnvelope(head + `<InstalledNonLeafUpdateIDs>` + intList(g, installed) + `</InstalledNonLeafUpdateIDs><` + list + `>` + intList(g, n-installed) + `</` + list + `>` + tail)
}

// extendedInfoSOAP is GetExtendedUpdateInfo for n revisions, padded with the
// locales and file types the agent asks for up to size.
func extendedInfoSOAP(g *rnd, n, size int) string {
	head := `<GetExtendedUpdateInfo xmlns="` + nsClient + `">` + cookieXML(g) + `<revisionIDs>` + intList(g, n) + `</revisionIDs><infoTypes><XmlUpdateFragmentType>Extended</XmlUpdateFragmentType><XmlUpdateFragmentType>LocalizedProperties</XmlUpdateFragmentType></infoTypes><locales>`
	tail := `</locales></GetExtendedUpdateInfo>`
	var b strings.Builder
	b.WriteString(head)
	for _, loc := range locales {
		if len(soapEnvelope(b.String()+tail))+len(loc)+17 > size {
			break
		}
		b.WriteString("<string>" + loc + "</string>")
	}
	return soapEnvelope(b.String() + tail)
}

var locales = func() []string {
	base := []string{"en-US", "en", "de-DE", "de", "fr-FR", "fr", "es-ES", "es", "it-IT", "it", "ja-JP", "ja", "nl-NL", "nl", "pt-BR", "pt", "sv-SE", "sv", "pl-PL", "pl", "ko-KR", "ko", "zh-CN", "zh-TW"}
	var out []string
	for i := 0; i < 40; i++ {
		out = append(out, base...)
	}
	return out
}()

// reportEventsSOAP is ReportEventBatch with events up to size.
func reportEventsSOAP(g *rnd, size int) string {
	head := `<ReportEventBatch xmlns="http://www.microsoft.com/SoftwareDistribution">` + cookieXML(g) + `<clientTime>2024-05-01T12:00:00Z</clientTime><eventBatch>`
	tail := `</eventBatch></ReportEventBatch>`
	var b strings.Builder
	b.WriteString(head)
	for len(soapEnvelope(b.String()+tail)) < size-400 {
		b.WriteString(`<ReportingEvent><BasicData><TargetID><Sid>` + strings.Trim(g.guid(), "{}") + `</Sid></TargetID><SequenceNumber>` + strconv.Itoa(g.r.IntN(1<<16)) +
			`</SequenceNumber><TimeAtTarget>2024-05-01T12:00:00Z</TimeAtTarget><EventInstanceID>` + strings.Trim(g.guid(), "{}") + `</EventInstanceID><NamespaceID>1</NamespaceID><EventID>` +
			strconv.Itoa(100+g.r.IntN(100)) + `</EventID><SourceID>1</SourceID><UpdateID><UpdateID>` + strings.Trim(g.guid(), "{}") + `</UpdateID><RevisionNumber>` + strconv.Itoa(g.r.IntN(300)) +
			`</RevisionNumber></UpdateID><Win32HResult>0</Win32HResult><AppName>` + "CcmExec" + `</AppName></BasicData></ReportingEvent>`)
	}
	return soapEnvelope(b.String() + tail)
}

// padXML returns an XML document of about size bytes: head, a comment of
// random hex (the signature a client appends), tail.
func padXML(g *rnd, head, tail string, size int) []byte {
	n := size - len(head) - len(tail) - 7
	if n < 0 {
		n = 0
	}
	return []byte(head + "<!--" + g.hex(n) + "-->" + tail)
}

// signatureHex is an RSA-2048 signature as the CCM headers carry it.
func signatureHex(g *rnd) string { return g.hex(512) }
