package roles

import (
	"encoding/xml"
	"net/http"
	"path"
	"strings"
)

// servePropfind answers a WebDAV PROPFIND the way an IIS folder that BITS serves
// does: 207 Multi-Status describing the resource, a collection when the path has no
// file extension. BITS and CM's data transfer service probe folders this way before
// they download them [PREP][E].
func servePropfind(w http.ResponseWriter, r *http.Request, rest string) {
	_, _ = discardBody(r.Body)
	href := r.URL.Path
	collection := strings.HasSuffix(rest, "/") || path.Ext(rest) == ""
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>`)
	_ = xml.EscapeText(&b, []byte(href))
	b.WriteString(`</D:href><D:propstat><D:status>HTTP/1.1 200 OK</D:status><D:prop>`)
	b.WriteString(`<D:displayname>`)
	_ = xml.EscapeText(&b, []byte(path.Base(rest)))
	b.WriteString(`</D:displayname><D:getlastmodified>` + blobModTime.Format(http.TimeFormat) + `</D:getlastmodified>`)
	if collection {
		b.WriteString(`<D:resourcetype><D:collection/></D:resourcetype><D:getcontentlength>0</D:getcontentlength>`)
	} else {
		b.WriteString(`<D:resourcetype/><D:getcontentlength>0</D:getcontentlength><D:getcontenttype>application/octet-stream</D:getcontenttype>`)
	}
	b.WriteString(`<D:iscollection>` + boolDigit(collection) + `</D:iscollection></D:prop></D:propstat></D:response></D:multistatus>`)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", itoa(b.Len()))
	w.WriteHeader(http.StatusMultiStatus)
	_, _ = w.Write([]byte(b.String()))
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}
