package roles

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// serveMP dispatches a request under /mp/. rest is the path behind the mount in its
// original case, lower the same lower-cased (IIS paths are case-insensitive).
func (s *Server) serveMP(w http.ResponseWriter, r *http.Request, rest, lower string) {
	if lower == "/healthz" {
		s.serveHealth(w, RoleMP)
		return
	}
	if s.serveHelper(w, r, RoleMP, lower) {
		return
	}
	switch lower {
	case "/sms_mp/.sms_aut":
		s.serveAuthority(w, r)
		return
	case "/sms_mp/.sms_pol":
		s.servePolicyBody(w, r)
		return
	case "/sms_mp/.sms_dcm":
		s.serveCIDocument(w, r)
		return
	case "/ccm_sts", "/ccm_sts/":
		s.serveCCMSTS(w, r)
		return
	case "/bgb/handler.ashx":
		s.serveNotification(w, r)
		return
	case "/cmg-content-token":
		s.serveContentToken(w, r)
		return
	}
	if auth, ok := messagingPath(lower); ok {
		s.serveMessage(w, r, auth)
		return
	}
	if lower == "/ccm_incoming" || strings.HasPrefix(lower, "/ccm_incoming/") {
		s.serveIncoming(w, r, rest)
		return
	}
	if r.Method == "PROPFIND" {
		s.counters.kind(kindPropfind)
		servePropfind(w, r, rest)
		return
	}
	s.notFound(w)
}

// messagingPath recognises /ccm_system[_altauth|_tokenauth|_windowsauth]/request and
// returns the auth flavour ("" for the anonymous E-HTTP one).
func messagingPath(lower string) (string, bool) {
	app, ok := strings.CutSuffix(lower, "/request")
	if !ok {
		return "", false
	}
	switch app {
	case "/ccm_system":
		return "", true
	case "/ccm_system_altauth":
		return "altauth", true
	case "/ccm_system_tokenauth":
		return "tokenauth", true
	case "/ccm_system_windowsauth":
		return "windowsauth", true
	}
	return "", false
}

// serveAuthority answers /SMS_MP/.sms_aut?<what>: the MP list and the certificates a
// client needs before it registers [KB403][LAB].
func (s *Server) serveAuthority(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	what := strings.ToUpper(r.URL.RawQuery)
	if i := strings.IndexAny(what, "&="); i >= 0 {
		what = what[:i]
	}
	var body string
	switch what {
	case "MPLIST", "MPLIST1", "MPLIST2":
		s.counters.kind(kindMPList)
		body = s.mpListXML(what == "MPLIST2")
	case "MPCERT", "SITESIGNCERT", "MPKEYINFORMATION", "MPKEYINFORMATIONMEDIA":
		s.counters.kind(kindMPCert)
		site, mp, err := s.certs.get()
		if err != nil {
			http.Error(w, "certificate unavailable", http.StatusInternalServerError)
			return
		}
		switch what {
		case "MPCERT":
			body = mp
		case "SITESIGNCERT":
			body = site
		default:
			body = `<MPKEYINFORMATION><FQDN>` + escText(s.cfg.Site.MPName) + `</FQDN><NAME>` + s.mpNetBIOS() + `</NAME><SITECODE>` + s.cfg.Site.Code +
				`</SITECODE><SIGNINGCERT>` + mp + `</SIGNINGCERT></MPKEYINFORMATION>`
		}
	default:
		s.notFound(w)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", itoa(len(body)))
	_, _ = io.WriteString(w, body)
}

// mpListXML is the MP list: this MP with its build number and capabilities.
func (s *Server) mpListXML(withSite bool) string {
	site := ""
	if withSite {
		site = ` SiteCode="` + s.cfg.Site.Code + `"`
	}
	return `<MPList><MP Name="` + escAttr(strings.ToUpper(s.cfg.Site.MPName)) + `" FQDN="` + escAttr(s.cfg.Site.MPName) + `"` + site + `>` +
		`<Version>` + itoa(s.cfg.Site.Version) + `</Version><Capabilities SchemaVersion="1.0"><Property Name="SSLState" Value="0"/></Capabilities></MP></MPList>`
}

// TokenReply is what CCM_STS answers: the CCM token and its lifetime in seconds. The
// product's format is not published; this JSON carries the same two facts [AAD].
type TokenReply struct {
	Token     string `json:"token"`
	ExpiresIn int64  `json:"expires_in"`
}

// ccmTokenLifetime is the CCM token's life [AAD].
const ccmTokenLifetime = 8 * time.Hour

// serveCCMSTS exchanges the device's token for a CCM token (client-traffic.md row
// "CCM token": 1,974 B in / 1,566 B out [S, AAD]).
func (s *Server) serveCCMSTS(w http.ResponseWriter, r *http.Request) {
	s.counters.kind(kindCCMToken)
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		methodNotAllowed(w, "GET, POST")
		return
	}
	in, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	token, life, err := s.issueToken(r.Context(), TokenRequest{Header: r.Header.Clone(), Body: in})
	if err != nil {
		s.log.Debug("CCM_STS: token refused", "err", err)
		http.Error(w, "token refused", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, TokenReply{Token: token, ExpiresIn: int64(life / time.Second)})
}

// defaultToken issues an opaque, JWT-shaped token whose reply is CCMTokenReply bytes
// long: header.payload.signature, base64url, derived from the request so the same
// request gets the same token.
func (s *Server) defaultToken(_ context.Context, req TokenRequest) (string, time.Duration, error) {
	sum := sha256.Sum256(req.Body)
	p := newPRNG(s.cfg.Seed^uint64(sum[0])<<8^uint64(sum[1]), "ccm token "+string(sum[:]))
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","x5t":"` + p.hex(27) + `"}`))
	claims, _ := json.Marshal(map[string]any{
		"iss": "SMS:" + s.cfg.Site.Code, "sub": "GUID:" + guidBare(p), "aud": "CCM", "ver": 1,
		"iat": s.now().Unix(), "exp": s.now().Add(ccmTokenLifetime).Unix(),
	})
	tok := head + "." + enc.EncodeToString(claims) + "."
	// The reply is {"token":"<tok>","expires_in":28800}\n: the signature fills the rest.
	overhead := len(`{"token":"","expires_in":28800}`) + 1
	sigLen := max(43, s.cfg.Sizes.CCMTokenReply-overhead-len(tok))
	raw := make([]byte, sigLen*3/4+3)
	for i := range raw {
		raw[i] = byte(p.next())
	}
	return tok + enc.EncodeToString(raw)[:sigLen], ccmTokenLifetime, nil
}

// serveNotification answers the client notification channel's HTTP side,
// /bgb/handler.ashx?RequestType=LogIn|KeepAlive|... (client-traffic.md section 3;
// renewal 2.5 KB up / 1.0 KB down [E]). It answers at once; the long-lived channel
// itself is the gateway's (DESIGN section 9).
func (s *Server) serveNotification(w http.ResponseWriter, r *http.Request) {
	s.counters.kind(kindNotification)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, "GET, POST")
		return
	}
	if _, err := discardBody(r.Body); err != nil {
		return
	}
	reqType := queryFold(r.URL.RawQuery).Get("requesttype")
	if reqType == "" {
		reqType = "KeepAlive"
	}
	reply := "KeepAliveConfirm"
	if strings.EqualFold(reqType, "LogIn") || strings.EqualFold(reqType, "SignIn") {
		reply = "SignInConfirm"
	}
	p := newPRNG(s.cfg.Seed, "bgb "+reqType)
	head := `<?xml version="1.0" encoding="utf-8"?><BgbResponseMessage Type="` + reply + `" SessionId="` + p.guid() +
		`" KeepAliveInterval="900" ServerName="` + s.mpNetBIOS() + `" SiteCode="` + s.cfg.Site.Code + `"><Properties>`
	tail := `</Properties></BgbResponseMessage>`
	body := buildExact(s.cfg.Sizes.NotificationReply, head, tail, p, func(b []byte, p *prng, i int) []byte {
		b = append(b, `<Property Name="P`...)
		b = append(b, itoa(i)...)
		b = append(b, `" Value="`...)
		b = p.appendHex(b, 32)
		return append(b, `"/>`...)
	})
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", itoa(len(body)))
	w.Header().Set("X-Powered-By", "ASP.NET")
	_, _ = w.Write(body)
}

// serveIncoming answers /CCM_Incoming/: BITS uploads, and the HEAD and PROPFIND
// probes a BITS client makes of the upload folder.
func (s *Server) serveIncoming(w http.ResponseWriter, r *http.Request, rest string) {
	switch r.Method {
	case "BITS_POST":
		s.serveBITS(w, r)
	case "PROPFIND":
		s.counters.kind(kindPropfind)
		servePropfind(w, r, rest)
	case http.MethodHead, http.MethodGet:
		// The upload folder lists nothing and serves nothing back [PREP].
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusForbidden)
	default:
		methodNotAllowed(w, "BITS_POST, HEAD, PROPFIND")
	}
}

// discardBody reads the whole body through a pooled buffer and counts it.
func discardBody(body io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(io.Discard, body, *bp)
}
