package roles

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// CCM messaging (CCM_POST /ccm_system*/request), client-traffic.md section 1: the MP
// decodes the envelope, routes on the target endpoint and, for a Sync message,
// answers with a message of the same shape. Async messages (state, status, DDR,
// inventory) get HTTP 200 and no reply message [TSUC].

// replyBuilder builds the XML body of a reply with n repeated records (assignments,
// location records, certificate hex digits) for request m.
type replyBuilder func(s *Server, p *prng, m *Message, info bodyInfo, n int) string

// sizedReply is one kind of reply whose record count was calibrated, once, so that
// its encoded size (header part + compressed body) is closest to the configured size.
type sizedReply struct {
	target int
	build  replyBuilder
	once   sync.Once
	n      int
}

// ccmReplies holds the calibrated reply kinds.
type ccmReplies struct {
	registration, location, wsusLocation, unchanged, full *sizedReply
}

func newCCMReplies(s *Server) *ccmReplies {
	z := s.cfg.Sizes
	return &ccmReplies{
		registration: &sizedReply{target: z.RegistrationReply, build: buildRegistrationReply},
		location:     &sizedReply{target: z.LocationReply, build: buildLocationReply},
		wsusLocation: &sizedReply{target: z.WSUSLocationReply, build: buildWSUSLocationReply},
		unchanged:    &sizedReply{target: z.PolicyAssignmentsUnchanged, build: buildAssignments},
		full:         &sizedReply{target: z.PolicyAssignmentsFull, build: buildAssignments},
	}
}

// calibrationRequest is a typical client request, the yardstick of calibration.
func calibrationRequest() (*Message, bodyInfo) {
	m := &Message{Header: MessageHeader{
		ReplyCompression: "zlib", Compressed: true,
		ID: "{5DD100CD-DF1D-45F5-BA17-A327F43465F8}", ReplyMode: "Sync",
		ReplyTo: "direct:DESKTOP-0A1B2C3D:SccmMessaging", SentTime: "2024-03-12T08:00:00Z",
		SourceID: "GUID:8B7B6A3C-2F14-4C55-9E51-2D3F0C1A9B77", SourceHost: "DESKTOP-0A1B2C3D",
		Timeout: 60000,
	}}
	info := bodyInfo{Fields: map[string]string{
		"ClientID": "GUID:8B7B6A3C-2F14-4C55-9E51-2D3F0C1A9B77", "FQDN": "desktop-0a1b2c3d.corp.example.com",
		"NetBIOSName": "DESKTOP-0A1B2C3D",
	}, Properties: map[string]string{"Netbios Name": "DESKTOP-0A1B2C3D", "FQ Name": "desktop-0a1b2c3d.corp.example.com"}}
	return m, info
}

// records returns the calibrated record count.
func (r *sizedReply) records(s *Server) int {
	r.once.Do(func() {
		m, info := calibrationRequest()
		size := func(n int) int {
			_, b := s.encodeReply(m, "calibration", r.build(s, newPRNG(s.cfg.Seed, "calibration"), m, info, n))
			return len(b)
		}
		lo, hi := 0, 1
		for size(hi) < r.target && hi < 1<<20 {
			lo, hi = hi, hi*2
		}
		for hi-lo > 1 { // size(lo) < target <= size(hi), or lo == 0
			mid := (lo + hi) / 2
			if size(mid) < r.target {
				lo = mid
			} else {
				hi = mid
			}
		}
		r.n = hi
		if abs(size(lo)-r.target) < abs(size(hi)-r.target) {
			r.n = lo
		}
	})
	return r.n
}

// serveMessage answers CCM_POST (and POST) to /ccm_system*/request.
func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request, authPath string) {
	if r.Method != "CCM_POST" && r.Method != http.MethodPost {
		methodNotAllowed(w, "CCM_POST, POST")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxMessageBytes+1))
	if err != nil {
		return // the client went away
	}
	if int64(len(raw)) > s.cfg.MaxMessageBytes {
		s.counters.kind(kindBadMessage)
		http.Error(w, "message too large", http.StatusRequestEntityTooLarge)
		return
	}
	m, err := ParseMessage(r.Header.Get("Content-Type"), raw, s.cfg.MaxMessageBytes)
	if err != nil {
		s.counters.kind(kindBadMessage)
		code := http.StatusBadRequest
		if errors.Is(err, ErrMessageTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		s.log.Debug("bad CCM message", "err", err)
		http.Error(w, "bad message", code)
		return
	}
	info := scanBody(m.Body)
	kind := classify(m.Header, info)
	s.counters.kind(kind)
	if !strings.EqualFold(m.Header.ReplyMode, "Sync") {
		// Async: accepted for delivery, nothing to say [TSUC].
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	body := s.replyBody(kind, m, info, authPath)
	ct, out := s.encodeReply(m, kind, body)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", itoa(len(out)))
	_, _ = w.Write(out)
}

// replyBody builds the reply body of a Sync message of kind.
func (s *Server) replyBody(kind string, m *Message, info bodyInfo, authPath string) string {
	p := newPRNG(s.cfg.Seed, kind+" "+m.Header.ID+" "+m.Header.SourceID)
	switch kind {
	case kindRegistration:
		info.Fields["approval"] = "1"
		if authPath == "tokenauth" {
			info.Fields["approval"] = "3" // the AAD path [MSF][AAD]
		}
		return buildRegistrationReply(s, p, m, info, s.replies.registration.records(s))
	case kindLocation:
		return buildLocationReply(s, p, m, info, s.replies.location.records(s))
	case kindWSUSLocation:
		return buildWSUSLocationReply(s, p, m, info, s.replies.wsusLocation.records(s))
	case kindAssignments:
		if s.unchanged(info) {
			info.Fields["reply_type"] = "Delta"
			return buildAssignments(s, p, m, info, s.replies.unchanged.records(s))
		}
		return buildAssignments(s, p, m, info, s.replies.full.records(s))
	}
	return `<Reply Status="0" SchemaVersion="1.00"/>`
}

// unchanged reports whether a RequestAssignments holds the site's current cookie, so
// only the unchanged-policy reply is due [SDK07]. First contact (no cookie) or an
// explicit Full request get the full set.
func (s *Server) unchanged(info bodyInfo) bool {
	if strings.EqualFold(info.RootAttrs["RequestType"], "Full") {
		return false
	}
	return info.Fields["ServerCookie"] == s.ServerCookie()
}

// ServerCookie is the policy cookie the simulated site hands out in ReplyAssignments;
// a RequestAssignments that sends it back gets the unchanged-policy reply.
func (s *Server) ServerCookie() string {
	p := newPRNG(s.cfg.Seed, "server cookie")
	t := blobModTime.Add(time.Duration(p.intn(86400*1000)) * time.Millisecond)
	return t.Format("2006-01-02 15:04:05.000")
}

// encodeReply wraps body in the reply envelope: the header answers the request's ID
// (CorrelationID) and goes back to its ReplyTo; the body is compressed when the
// request allows it (ReplyCompression="zlib").
func (s *Server) encodeReply(m *Message, kind, body string) (string, []byte) {
	p := newPRNG(s.cfg.Seed, "reply id "+kind+" "+m.Header.ID)
	h := MessageHeader{
		SchemaVersion:  "1.1",
		CorrelationID:  m.Header.ID,
		Compressed:     strings.EqualFold(m.Header.ReplyCompression, "zlib"),
		ID:             p.guid(),
		ReplyMode:      "Sync",
		ReplyTo:        "direct:" + s.mpNetBIOS() + ":" + m.Header.TargetEndpoint,
		SentTime:       s.now().UTC().Format("2006-01-02T15:04:05Z"),
		SourceHost:     s.mpNetBIOS(),
		TargetAddress:  m.Header.ReplyTo,
		TargetEndpoint: "SccmMessaging",
		TargetHost:     m.Header.SourceHost,
		Timeout:        m.Header.Timeout,
	}
	return EncodeMessage(Message{Header: h, Body: body})
}

// mpNetBIOS is the MP's short name in upper case, as message headers carry it.
func (s *Server) mpNetBIOS() string {
	name, _, _ := strings.Cut(s.cfg.Site.MPName, ".")
	return strings.ToUpper(name)
}
