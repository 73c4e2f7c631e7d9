package device

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// run performs the exchanges of o.class's kind.
func (o *occurrence) run(ctx context.Context) error {
	c := o.class
	d := o.d
	if d.env.Profile.Auth == profile.AuthToken && d.id.Token == "" && c.Kind != profile.KindCCMToken && d.bearer() == "" {
		// A token client gets its CCM token before anything else.
		saved := o.class
		o.class = tokenClass(d.env.Profile)
		err := o.ccmToken(ctx)
		o.class = saved
		if err != nil {
			return err
		}
	}
	size := int(c.Request)
	switch c.Kind {
	case profile.KindMachinePolicy:
		return o.policy(ctx, "Machine", size)
	case profile.KindUserPolicy:
		return o.policy(ctx, "User", size)
	case profile.KindNotificationRenewal:
		body := padXML(o.g, `<?xml version="1.0" encoding="utf-8"?><BgbRequestMessage Type="KeepAlive" ClientID="`+d.cl.smsid+`" SessionId="`+o.g.guid()+`" ProtocolVersion="5.00">`, `</BgbRequestMessage>`, size)
		_, err := o.do(ctx, o.mpRequest(http.MethodPost, "/bgb/handler.ashx?RequestType=KeepAlive", "text/xml; charset=utf-8", body))
		return err
	case profile.KindStateMessage:
		return o.message(ctx, "state", specState, size)
	case profile.KindStatusMessage:
		return o.message(ctx, "status", specStatus, size)
	case profile.KindDDR:
		return o.message(ctx, "ddr", specDDR, size)
	case profile.KindMetering:
		return o.message(ctx, "metering", specMetering, size)
	case profile.KindScriptResult:
		return o.message(ctx, "script", specScript, size)
	case profile.KindWSUSLocation:
		return o.message(ctx, "wsuslocation", specWSUSLoc, size)
	case profile.KindCCMToken:
		return o.ccmToken(ctx)
	case profile.KindLocation:
		for _, q := range []string{"MPLIST2", "MPCERT", "SITESIGNCERT"} {
			if _, err := o.do(ctx, o.mpRequest(http.MethodGet, "/SMS_MP/.sms_aut?"+q, "", nil)); err != nil {
				return err
			}
		}
		return o.message(ctx, "location", specLocation, size)
	case profile.KindPolicyBody:
		for range c.Exchanges {
			q := "/SMS_MP/.sms_pol?" + o.g.guid() + ".SHA256:" + strings.ToLower(o.g.hex(64))
			if _, err := o.do(ctx, o.mpRequest(http.MethodGet, q, "", nil)); err != nil {
				return err
			}
		}
		return nil
	case profile.KindCIDocument, profile.KindAppList:
		for range c.Exchanges {
			q := "/SMS_MP/.sms_dcm?Id&DocumentId=ScopeId_" + strings.Trim(o.g.guid(), "{}") + "/Application_" + strings.Trim(o.g.guid(), "{}") +
				"/" + strconv.Itoa(1+o.g.r.IntN(20)) + "/PROPERTIES&Hash=" + o.g.hex(64) + "&Compression=zlib"
			if _, err := o.do(ctx, o.mpRequest(http.MethodGet, q, "", nil)); err != nil {
				return err
			}
		}
		return nil
	case profile.KindSUPScan:
		return o.supScan(ctx, size)
	case profile.KindSUPMetadata:
		per := size / c.Exchanges
		for range c.Exchanges {
			if _, err := o.do(ctx, o.soap("/ClientWebService/client.asmx", "GetExtendedUpdateInfo", extendedInfoSOAP(o.g, c.Items, per))); err != nil {
				return err
			}
		}
		return nil
	case profile.KindWUAReport:
		_, err := o.do(ctx, o.soap("/ReportingWebService/ReportingWebService.asmx", "ReportEventBatch", reportEventsSOAP(o.g, size)))
		return err
	case profile.KindBITSUpload:
		return o.bitsUpload(ctx, size)
	}
	return fmt.Errorf("device: kind %s is not simulated", c.Kind)
}

func tokenClass(p *profile.Profile) profile.Class {
	for _, c := range p.Classes {
		if c.Kind == profile.KindCCMToken {
			return c
		}
	}
	return profile.Class{Name: "ccm_token", Kind: profile.KindCCMToken, Exchanges: 1, Request: 2000}
}

// mpRequest is a request to the management point with the headers the CM
// client sends through a cloud management gateway: its client ID and a
// signed timestamp [DF], each signature an RSA-2048 signature in hex.
func (o *occurrence) mpRequest(method, path, contentType string, body []byte) request {
	h := http.Header{
		"User-Agent":                  {"ccmhttp"},
		"Ccmclientid":                 {o.d.cl.smsid},
		"Ccmclientidsignature":        {signatureHex(o.g)},
		"Ccmclienttimestamp":          {"2024-05-01T12:00:00Z"},
		"Ccmclienttimestampsignature": {signatureHex(o.g)},
	}
	// Canonical names as the client writes them.
	for _, k := range []string{"CCMClientID", "CCMClientIDSignature", "CCMClientTimestamp", "CCMClientTimestampSignature"} {
		h[k] = h[http.CanonicalHeaderKey(k)]
		delete(h, http.CanonicalHeaderKey(k))
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return request{method: method, path: path, role: profile.RoleMP, header: h, body: body}
}

// messagingPath is where the client posts CCM messages: the PKI client's
// /ccm_system_altauth/request [LAB], or the token client's.
func (o *occurrence) messagingPath() string {
	if o.d.id.Certificate == nil {
		return "/ccm_system_tokenauth/request"
	}
	return "/ccm_system_altauth/request"
}

func (o *occurrence) message(ctx context.Context, key string, spec messageSpec, size int) error {
	ct, body := buildMessage(o.g, o.d.cl, key, spec, size, o.d.env.MPHost)
	_, err := o.do(ctx, o.mpRequest("CCM_POST", o.messagingPath(), ct, body))
	return err
}

var cookieRE = regexp.MustCompile(`<ServerCookie>([^<]*)</ServerCookie>`)

// policy polls for assignments with the cookie of the last reply; the first
// poll (no cookie yet) gets the full set.
func (o *occurrence) policy(ctx context.Context, resource string, size int) error {
	d := o.d
	d.mu.Lock()
	cookie := d.cookie
	d.mu.Unlock()
	key := "policy-" + resource
	if cookie == "" {
		key += "-first"
	}
	ct, body := buildMessage(o.g, d.cl, key, policySpec(resource, cookie), size, d.env.MPHost)
	r := o.mpRequest("CCM_POST", o.messagingPath(), ct, body)
	r.keep = cookie == ""
	resp, err := o.do(ctx, r)
	if err != nil || cookie != "" {
		return err
	}
	if m, perr := roles.ParseMessage(resp.header.Get("Content-Type"), resp.body, 64<<20); perr == nil {
		if g := cookieRE.FindStringSubmatch(m.Body); g != nil {
			d.mu.Lock()
			d.cookie = g[1]
			d.mu.Unlock()
		}
	}
	return nil
}

// ccmToken exchanges the device's token for a CCM token at CCM_STS [AAD].
func (o *occurrence) ccmToken(ctx context.Context) error {
	d := o.d
	tok := d.id.Token
	if tok == "" {
		tok = base64ish(o.g, 1200)
	}
	head := `{"token":"` + tok + `","resource":"https://ConfigMgrService","client":"` + d.cl.smsid + `","pad":"`
	n := max(0, int(o.class.Request)-len(head)-2)
	body := []byte(head + base64ish(o.g, n) + `"}`)
	r := o.mpRequest(http.MethodPost, "/CCM_STS", "application/json", body)
	r.keep = true
	resp, err := o.do(ctx, r)
	if err != nil {
		return err
	}
	var rep roles.TokenReply
	if json.Unmarshal(resp.body, &rep) == nil && rep.Token != "" {
		d.mu.Lock()
		d.ccmToken = rep.Token
		d.mu.Unlock()
	}
	return nil
}

// soap is a WSUS web service call as the Windows Update Agent makes it.
func (o *occurrence) soap(path, action, envelope string) request {
	return request{
		method: http.MethodPost, path: path, role: profile.RoleSUP, body: []byte(envelope),
		header: http.Header{
			"User-Agent":   {"Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50"},
			"Content-Type": {"text/xml; charset=utf-8"},
			"Soapaction":   {`"` + nsClient + "/" + action + `"`},
		},
	}
}

// supScan is a delta scan [WSUSOD 3.4]: GetCookie, SyncUpdates for software
// (exchanges-2 iterations, each sending back the cached revision IDs), then
// one SyncUpdates for drivers. The request bytes are split: the cookie call is
// what it is, the driver pass 5 %, the software passes the rest.
func (o *occurrence) supScan(ctx context.Context, size int) error {
	cookie := getCookieSOAP(o.g)
	if _, err := o.do(ctx, o.soap("/ClientWebService/client.asmx", "GetCookie", cookie)); err != nil {
		return err
	}
	n := o.class.Exchanges - 2
	drivers := size / 20
	per := max(1024, (size-len(cookie)-drivers)/n)
	for range n {
		if _, err := o.do(ctx, o.soap("/ClientWebService/client.asmx", "SyncUpdates", syncUpdatesSOAP(o.g, false, per))); err != nil {
			return err
		}
	}
	_, err := o.do(ctx, o.soap("/ClientWebService/client.asmx", "SyncUpdates", syncUpdatesSOAP(o.g, true, max(1024, drivers))))
	return err
}

// bitsUpload uploads a report to /CCM_Incoming/ with BITS [BUP]: Create-Session,
// exchanges-2 fragments, Close-Session.
func (o *occurrence) bitsUpload(ctx context.Context, size int) error {
	path := "/CCM_Incoming/" + o.g.guid()
	create := o.mpRequest("BITS_POST", path, "", nil)
	create.header.Set("BITS-Packet-Type", "Create-Session")
	create.header.Set("BITS-Supported-Protocols", "{7df0354d-249b-430f-820d-3d2a9bef4931}")
	create.header.Set("User-Agent", "Microsoft BITS/7.8")
	resp, err := o.do(ctx, create)
	if err != nil {
		return err
	}
	id := resp.header.Get("BITS-Session-Id")
	frags := o.class.Exchanges - 2
	data := o.g.bytes(size)
	off := 0
	for i := range frags {
		end := size * (i + 1) / frags
		f := o.mpRequest("BITS_POST", path, "application/octet-stream", data[off:end])
		f.header.Set("BITS-Packet-Type", "Fragment")
		f.header.Set("BITS-Session-Id", id)
		f.header.Set("Content-Range", "bytes "+strconv.Itoa(off)+"-"+strconv.Itoa(end-1)+"/"+strconv.Itoa(size))
		f.header.Set("User-Agent", "Microsoft BITS/7.8")
		if _, err := o.do(ctx, f); err != nil {
			return err
		}
		off = end
	}
	cl := o.mpRequest("BITS_POST", path, "", nil)
	cl.header.Set("BITS-Packet-Type", "Close-Session")
	cl.header.Set("BITS-Session-Id", id)
	cl.header.Set("User-Agent", "Microsoft BITS/7.8")
	_, err = o.do(ctx, cl)
	return err
}
