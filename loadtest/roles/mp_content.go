package roles

import (
	"net/http"
	"sort"
	"time"

	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// WithContentTokens lets the management point issue content tokens with the
// site's issuer (GET /mp/cmg-content-token?package=P). Without it that
// endpoint answers 404.
func WithContentTokens(iss *sitetoken.Issuer) Option {
	return func(s *Server) { s.content = &contentTokens{iss: iss} }
}

type contentTokens struct{ iss *sitetoken.Issuer }

// ContentTokenReply is what /mp/cmg-content-token answers: a content token
// for one package and where its files are. It stands in for what the original
// product's management point hands a device with its content locations: a
// content access token valid 24 hours and the cloud source of each file
// (original-product.md section 1, content flow).
type ContentTokenReply struct {
	Token     string `json:"token"`
	ExpiresIn int64  `json:"expires_in"`
	Site      string `json:"site"`
	Package   string `json:"package"`
	Version   string `json:"version"`
	// Files are the version's files, each with the path devices download it
	// from on the gateway (/cmg/v1/content/...).
	Files []ContentTokenFile `json:"files"`
}

// ContentTokenFile is one file of a ContentTokenReply.
type ContentTokenFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Path   string `json:"path"`
}

// serveContentToken answers GET cmg-content-token?package=P[&version=V] with
// a content token for P (the device is the one the gateway vouched for in
// Cmg-Device-Id) and the files of version V, by default the last one listed.
func (s *Server) serveContentToken(w http.ResponseWriter, r *http.Request) {
	s.counters.kind(kindContentToken)
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	q := queryFold(r.URL.RawQuery)
	pkg, ver := q.Get("package"), q.Get("version")
	var v *dpVersion
	for _, pc := range s.cfg.DP.Packages {
		if pc.ID == pkg && (ver == "" || pc.Version == ver) {
			v = s.dp.versions[pc.ID+"/"+pc.Version]
		}
	}
	if s.content == nil || v == nil {
		s.notFound(w)
		return
	}
	device := r.Header.Get("Cmg-Device-Id")
	if device == "" {
		device = "device"
	}
	tok, err := s.content.iss.Issue(sitetoken.Content, device, sitetoken.Options{Package: pkg, Now: s.now()})
	if err != nil {
		http.Error(w, "token refused", http.StatusBadRequest)
		return
	}
	reply := ContentTokenReply{
		Token: tok, ExpiresIn: int64(sitetoken.DefaultContentTTL / time.Second),
		Site: s.content.iss.Site(), Package: v.id, Version: v.version,
	}
	for _, f := range v.files {
		reply.Files = append(reply.Files, ContentTokenFile{
			Name: f.name, Size: f.size, SHA256: f.published(),
			Path: contentmanifest.DevicePrefix + contentmanifest.FilePath(v.id, v.version, f.name),
		})
	}
	sort.Slice(reply.Files, func(i, j int) bool { return reply.Files[i].Name < reply.Files[j].Name })
	writeJSON(w, http.StatusOK, reply)
}
