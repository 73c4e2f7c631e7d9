package roles

import (
	"strings"
)

// The XML bodies of the MP's Sync replies. Element and attribute names follow what
// the published tools read from real MPs [MSF][SCH] and the CM 2007 SDK [SDK07].

// guidBare is a GUID without braces, the form SMSIDs take after "GUID:".
func guidBare(p *prng) string { return strings.Trim(p.guid(), "{}") }

// clientName is the requesting client's NetBIOS name, from the body or the header.
func clientName(m *Message, info bodyInfo) string {
	for _, v := range []string{info.Properties["Netbios Name"], info.Fields["NetBIOSName"], m.Header.SourceHost} {
		if v != "" {
			return v
		}
	}
	return "UNKNOWN"
}

// buildRegistrationReply answers ClientRegistrationRequest: the SMSID the site gives
// the client (kept when the client already has one) and its approval status; n is the
// hex length of the site signing certificate the reply carries.
func buildRegistrationReply(s *Server, p *prng, m *Message, info bodyInfo, n int) string {
	smsid := info.Fields["Data@SMSID"]
	if smsid == "" {
		// The same client (name + FQDN) always gets the same SMSID.
		q := newPRNG(s.cfg.Seed, "smsid "+clientName(m, info)+" "+info.Properties["FQ Name"])
		smsid = "GUID:" + guidBare(q)
	}
	approval := info.Fields["approval"]
	if approval == "" {
		approval = "1"
	}
	var b strings.Builder
	b.WriteString(`<ClientRegistrationReply SMSID="` + escAttr(smsid) + `" ApprovalStatus="` + approval + `" RequestType="Registration">`)
	b.WriteString(`<Site SiteCode="` + s.cfg.Site.Code + `" SiteVersion="5.00.` + itoa(s.cfg.Site.Version) + `.1000"/>`)
	b.WriteString(`<Certificates><SiteSigning Encoding="HexBinary" KeyType="1">3082`)
	b.WriteString(p.hex(n))
	b.WriteString(`</SiteSigning></Certificates></ClientRegistrationReply>`)
	return b.String()
}

// mpSiteXML is the <MPSite> element of location replies.
func (s *Server) mpSiteXML() string {
	return `<MPSite SiteCode="` + s.cfg.Site.Code + `" MasterSiteCode="` + s.cfg.Site.Code + `" SiteLocality="LOCAL" IISPreferedPort="80" IISSSLPreferedPort="443"/>`
}

// buildLocationReply answers ContentLocationRequest (and the other location
// requests) with n location records: the distribution points of the content.
func buildLocationReply(s *Server, p *prng, m *Message, info bodyInfo, n int) string {
	_ = m
	root := "LocationReply"
	if r := info.Root; strings.HasSuffix(r, "Request") {
		root = strings.TrimSuffix(r, "Request") + "Reply"
	}
	domain := s.domain()
	var b strings.Builder
	b.WriteString(`<` + root + ` SchemaVersion="1.00"><ContentInfo PackageFlags="16777216"><ContentHashValues/></ContentInfo><Sites><Site>`)
	b.WriteString(s.mpSiteXML())
	b.WriteString(`<LocationRecords>`)
	pkg := s.cfg.Site.Code + "00" + p.hex(3)
	for i := range n {
		dp := "dp" + pad2(i+1) + "." + domain
		b.WriteString(`<LocationRecord><URL Name="http://` + dp + `/SMS_DP_SMSPKG$/` + pkg + `" Signature="http://` + dp + `/SMS_DP_SMSSIG$/` + pkg + `"/>`)
		b.WriteString(`<ADSite Name="Site-` + p.hex(4) + `"/><IPSubnets><IPSubnet Address="10.` + itoa(p.intn(256)) + `.` + itoa(p.intn(256)) + `.0"/><IPSubnet Address=""/></IPSubnets>`)
		b.WriteString(`<Metric Value=""/><Version>` + itoa(s.cfg.Site.Version) + `</Version><Capabilities SchemaVersion="1.0"><Property Name="SSLState" Value="0"/></Capabilities>`)
		b.WriteString(`<ServerRemoteName>` + dp + `</ServerRemoteName><DPType>SERVER</DPType><Windows Trust="0"/><Locality>LOCAL</Locality></LocationRecord>`)
	}
	b.WriteString(`</LocationRecords></Site></Sites><RelatedContentIDs/></` + root + `>`)
	return b.String()
}

// buildWSUSLocationReply answers WSUSLocationRequest with the software update point
// (first record: the configured SUP URL) and n-1 more [TSUC].
func buildWSUSLocationReply(s *Server, p *prng, _ *Message, _ bodyInfo, n int) string {
	var b strings.Builder
	b.WriteString(`<WSUSLocationReply SchemaVersion="1.00"><Sites><Site>`)
	b.WriteString(s.mpSiteXML())
	b.WriteString(`<LocationRecords>`)
	for i := range max(n, 1) {
		url := s.cfg.Site.SUPURL
		if i > 0 {
			url = "http://sup" + pad2(i+1) + "." + s.domain() + ":8530"
		}
		b.WriteString(`<LocationRecord WSUSURL="` + escAttr(url) + `" ServerName="` + escAttr(hostOf(url)) + `" ServerPort="8530" SSLPort="8531" Version="` + itoa(p.intn(1<<16)) + `"/>`)
	}
	b.WriteString(`</LocationRecords></Site></Sites></WSUSLocationReply>`)
	return b.String()
}

// buildAssignments answers RequestAssignments with the first n of the site's policy
// assignments. The set is site-wide (the same for every client, as most assignments
// are), so each policy ID and hash stays stable across polls.
func buildAssignments(s *Server, _ *prng, m *Message, info bodyInfo, n int) string {
	replyType := info.Fields["reply_type"]
	if replyType == "" {
		replyType = "Full"
	}
	resource := info.Fields["Resource@ResourceType"]
	if resource == "" {
		resource = "Machine"
	}
	var b strings.Builder
	b.WriteString(`<ReplyAssignments SchemaVersion="1.00" ReplyType="` + replyType + `"><Identification><Machine>`)
	b.WriteString(`<ClientID>` + escText(def(info.Fields["ClientID"], m.Header.SourceID)) + `</ClientID>`)
	b.WriteString(`<FQDN>` + escText(info.Fields["FQDN"]) + `</FQDN><NetBIOSName>` + escText(clientName(m, info)) + `</NetBIOSName><SID/></Machine></Identification>`)
	b.WriteString(`<PolicySource>SMS:` + s.cfg.Site.Code + `</PolicySource><Resource ResourceType="` + escAttr(resource) + `"/>`)
	b.WriteString(`<ServerCookie>` + s.ServerCookie() + `</ServerCookie>`)
	site := newPRNG(s.cfg.Seed, "site policy")
	for i := range n {
		b.WriteString(s.assignmentXML(site, i))
	}
	b.WriteString(`</ReplyAssignments>`)
	return b.String()
}

// assignmentXML is site policy assignment i. PolicyFlags 4 marks a secret policy
// (NAAConfig) whose body needs the client token [MSF].
func (s *Server) assignmentXML(p *prng, i int) string {
	id := s.policyID(p, i)
	cat := policyCategories[i%len(policyCategories)]
	flags := "16"
	if cat == "NAAConfig" {
		flags = "20"
	}
	assignmentID := p.guid()
	version := itoa(1+p.intn(30)) + ".00"
	hash := p.hex(64) // the document hash; the body served for id is generated, not stored
	return `<PolicyAssignment PolicyAssignmentID="` + assignmentID + `"><Condition><Expression ExpressionLanguage="WQL" ExpressionType="until-true">` +
		`<![CDATA[SELECT * FROM CCM_Client]]></Expression></Condition>` +
		`<Policy PolicyID="` + escAttr(id) + `" PolicyVersion="` + version + `" PolicyType="Machine" PolicyCategory="` + cat + `" PolicyFlags="` + flags + `">` +
		`<PolicyLocation PolicyHash="SHA256:` + hash + `" PolicyHashEx="SHA256:` + hash + `"><![CDATA[http://<mp>/SMS_MP/.sms_pol?` + id + `.SHA256:` + hash + `]]></PolicyLocation>` +
		`</Policy></PolicyAssignment>`
}

func pad2(n int) string {
	if n < 10 {
		return "0" + itoa(n)
	}
	return itoa(n)
}

// domain is the MP's DNS domain, which the other simulated servers share.
func (s *Server) domain() string {
	_, d, ok := strings.Cut(s.cfg.Site.MPName, ".")
	if !ok {
		return "corp.example.com"
	}
	return d
}

// hostOf is the host of a URL, or the URL when it has none.
func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		rest = u
	}
	host, _, _ := strings.Cut(rest, "/")
	if h, _, ok := strings.Cut(host, ":"); ok {
		return h
	}
	return host
}
