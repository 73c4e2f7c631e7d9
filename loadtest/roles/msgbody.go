package roles

import (
	"encoding/xml"
	"io"
	"strings"
)

// bodyInfo is what the MP needs from a message body: its root element and a few
// fields, found by one streaming pass (the bodies are client-controlled, so no tree).
type bodyInfo struct {
	Root      string
	RootAttrs map[string]string
	// Fields holds the first text of each element in wantedFields, and the attributes
	// of a few elements, keyed "Element@Attr".
	Fields map[string]string
	// Properties holds <Property Name= Value=> pairs (registration discovery data).
	Properties map[string]string
}

var wantedFields = map[string]bool{
	"ClientID": true, "FQDN": true, "NetBIOSName": true, "ServerCookie": true,
	"ReportContent": true, "ReportType": true, "InventoryActionID": true, "PolicySource": true,
}

var wantedAttrs = map[string]bool{"Resource@ResourceType": true, "Data@SMSID": true, "Data@RequestType": true}

// maxBodyTokens bounds the scan of one body, whatever its size.
const maxBodyTokens = 1 << 16

func scanBody(body string) bodyInfo {
	info := bodyInfo{RootAttrs: map[string]string{}, Fields: map[string]string{}, Properties: map[string]string{}}
	d := xml.NewDecoder(strings.NewReader(body))
	d.Strict = false
	// The text is already UTF-8 whatever the declaration says ("UTF-16").
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var current string
	for range maxBodyTokens {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if info.Root == "" {
				info.Root = name
				for _, a := range t.Attr {
					info.RootAttrs[a.Name.Local] = a.Value
				}
			}
			for _, a := range t.Attr {
				if key := name + "@" + a.Name.Local; wantedAttrs[key] {
					info.Fields[key] = a.Value
				}
			}
			if name == "Property" {
				info.addProperty(t.Attr)
			}
			current = ""
			if wantedFields[name] {
				if _, seen := info.Fields[name]; !seen {
					current = name
					info.Fields[name] = ""
				}
			}
		case xml.CharData:
			if current != "" {
				info.Fields[current] += strings.TrimSpace(string(t))
			}
		case xml.EndElement:
			current = ""
		}
	}
	return info
}

func (b *bodyInfo) addProperty(attrs []xml.Attr) {
	var name, value string
	for _, a := range attrs {
		switch a.Name.Local {
		case "Name":
			name = a.Value
		case "Value":
			value = a.Value
		}
	}
	if name != "" && len(b.Properties) < 64 {
		b.Properties[name] = value
	}
}

// InventoryActionIDs of the Report bodies [IMP][SDK07].
const (
	actionHINV = "{00000000-0000-0000-0000-000000000001}"
	actionSINV = "{00000000-0000-0000-0000-000000000002}"
	actionDDR  = "{00000000-0000-0000-0000-000000000003}"
)

// classify names the exchange a message is, from its target endpoint and body.
func classify(h MessageHeader, b bodyInfo) string {
	ep := strings.ToLower(h.TargetEndpoint)
	switch {
	case ep == "mp_clientregistration" || b.Root == "ClientRegistrationRequest":
		return kindRegistration
	case ep == "mp_policymanager" || b.Root == "RequestAssignments":
		return kindAssignments
	case ep == "mp_locationmanager" || strings.HasSuffix(b.Root, "LocationRequest"):
		if b.Root == "WSUSLocationRequest" {
			return kindWSUSLocation
		}
		return kindLocation
	}
	if b.Root == "Report" {
		switch strings.ToUpper(b.Fields["InventoryActionID"]) {
		case actionHINV:
			return kindHINV
		case actionSINV:
			return kindSINV
		case actionDDR:
			return kindDDR
		}
		if strings.Contains(strings.ToLower(b.Fields["ReportContent"]), "state message") {
			return kindStateMessage
		}
		if strings.Contains(strings.ToLower(b.Fields["ReportContent"]), "status message") {
			return kindStatusMessage
		}
	}
	switch ep {
	case "mp_relayendpoint", "mp_statemessageendpoint":
		return kindStateMessage
	case "mp_statusendpoint", "mp_statusmanager", "mp_statusreceiver":
		return kindStatusMessage
	case "mp_ddrendpoint":
		return kindDDR
	case "mp_hinvendpoint":
		return kindHINV
	case "mp_sinvendpoint":
		return kindSINV
	}
	return kindOtherMessage
}
