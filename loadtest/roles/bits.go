package roles

import (
	"container/list"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BITS uploads to /CCM_Incoming/ (client-traffic.md section 1: larger inventory and
// status reports; [BUP], MC-BUP): BITS_POST with BITS-Packet-Type Ping,
// Create-Session, Fragment, Close-Session or Cancel-Session, each answered by an Ack.
// The uploaded bytes are counted and dropped.

// bitsUploadProtocol is the BITS upload protocol's identifier.
const bitsUploadProtocol = "{7df0354d-249b-430f-820d-3d2a9bef4931}"

// HRESULTs a BITS server reports in BITS-Error-Code.
const (
	bitsEInvalidArg       = "0x80070057" // E_INVALIDARG
	bitsESessionNotFound  = "0x8020001f" // BG_E_SESSION_NOT_FOUND
	bitsEProtocolMismatch = "0x80200022" // BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH
	bitsContextRemoteFile = "0x5"        // BG_ERROR_CONTEXT_REMOTE_FILE
)

type bitsSession struct {
	id       string
	path     string
	received int64 // next offset expected
	total    int64 // -1 until a fragment names it
	seen     time.Time
	elem     *list.Element
}

// bitsSessions are the open upload sessions, bounded in number and age: the oldest
// (least recently used) go first.
type bitsSessions struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	byID  map[string]*bitsSession
	order *list.List // least recently used first
	seq   uint64
}

func newBITSSessions(max int, ttl time.Duration) *bitsSessions {
	return &bitsSessions{max: max, ttl: ttl, byID: map[string]*bitsSession{}, order: list.New()}
}

func (b *bitsSessions) create(seed uint64, path string, now time.Time) *bitsSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(now)
	for len(b.byID) >= b.max {
		b.drop(b.order.Front().Value.(*bitsSession))
	}
	b.seq++
	p := newPRNG(seed, "bits session "+strconv.FormatUint(b.seq, 10))
	s := &bitsSession{id: p.guid(), path: path, total: -1, seen: now}
	s.elem = b.order.PushBack(s)
	b.byID[strings.ToUpper(s.id)] = s
	return s
}

// with runs f on the session under the lock; it reports false when there is none.
func (b *bitsSessions) with(id string, now time.Time, f func(*bitsSession)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(now)
	s, ok := b.byID[strings.ToUpper(id)]
	if !ok {
		return false
	}
	s.seen = now
	b.order.MoveToBack(s.elem)
	f(s)
	return true
}

func (b *bitsSessions) remove(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.byID[strings.ToUpper(id)]
	if ok {
		b.drop(s)
	}
	return ok
}

func (b *bitsSessions) drop(s *bitsSession) {
	b.order.Remove(s.elem)
	delete(b.byID, strings.ToUpper(s.id))
}

func (b *bitsSessions) expire(now time.Time) {
	for e := b.order.Front(); e != nil; e = b.order.Front() {
		s := e.Value.(*bitsSession)
		if now.Sub(s.seen) < b.ttl {
			return
		}
		b.drop(s)
	}
}

func (b *bitsSessions) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.byID)
}

// serveBITS answers a BITS_POST to /CCM_Incoming/.
func (s *Server) serveBITS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("BITS-Packet-Type", "Ack")
	switch strings.ToLower(r.Header.Get("BITS-Packet-Type")) {
	case "ping":
		s.counters.kind(kindBITSPing)
		bitsAck(w, http.StatusOK)
	case "create-session":
		s.bitsCreate(w, r)
	case "fragment":
		s.bitsFragment(w, r)
	case "close-session":
		s.counters.kind(kindBITSClose)
		s.bitsEnd(w, r)
	case "cancel-session":
		s.counters.kind(kindBITSCancel)
		s.bitsEnd(w, r)
	default:
		s.bitsError(w, http.StatusBadRequest, bitsEInvalidArg)
	}
}

func bitsAck(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}

func (s *Server) bitsError(w http.ResponseWriter, code int, hresult string) {
	s.counters.kind(kindBITSError)
	w.Header().Set("BITS-Error-Code", hresult)
	w.Header().Set("BITS-Error-Context", bitsContextRemoteFile)
	bitsAck(w, code)
}

func (s *Server) bitsCreate(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(strings.ToLower(r.Header.Get("BITS-Supported-Protocols")), bitsUploadProtocol) {
		s.bitsError(w, http.StatusBadRequest, bitsEProtocolMismatch)
		return
	}
	s.counters.kind(kindBITSCreate)
	sess := s.bits.create(s.cfg.Seed, r.URL.Path, s.now())
	h := w.Header()
	h.Set("BITS-Protocol", bitsUploadProtocol)
	h.Set("BITS-Session-Id", sess.id)
	h.Set("Accept-Encoding", "Identity")
	bitsAck(w, http.StatusOK)
}

// bitsFragment takes one fragment: Content-Range "bytes first-last/total". A fragment
// that starts past what was received gets 416 with the offset wanted; an overlapping
// one is accepted for its new bytes only, as BITS servers do.
func (s *Server) bitsFragment(w http.ResponseWriter, r *http.Request) {
	s.counters.kind(kindBITSFragment)
	id := r.Header.Get("BITS-Session-Id")
	w.Header().Set("BITS-Session-Id", id)
	first, last, total, ok := parseContentRange(r.Header.Get("Content-Range"))
	if !ok {
		s.bitsError(w, http.StatusBadRequest, bitsEInvalidArg)
		return
	}
	n, err := discardBody(r.Body)
	if err != nil {
		return
	}
	if n != last-first+1 {
		s.bitsError(w, http.StatusBadRequest, bitsEInvalidArg)
		return
	}
	var gap bool
	var next int64
	found := s.bits.with(id, s.now(), func(b *bitsSession) {
		if first > b.received {
			gap = true
		} else {
			b.received = max(b.received, last+1)
			b.total = total
		}
		next = b.received
	})
	if !found {
		s.bitsError(w, http.StatusInternalServerError, bitsESessionNotFound)
		return
	}
	w.Header().Set("BITS-Received-Content-Range", strconv.FormatInt(next, 10))
	if gap {
		bitsAck(w, http.StatusRequestedRangeNotSatisfiable)
		return
	}
	bitsAck(w, http.StatusOK)
}

func (s *Server) bitsEnd(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("BITS-Session-Id")
	w.Header().Set("BITS-Session-Id", id)
	if !s.bits.remove(id) {
		s.bitsError(w, http.StatusInternalServerError, bitsESessionNotFound)
		return
	}
	bitsAck(w, http.StatusOK)
}

// parseContentRange parses "bytes first-last/total" (BITS writes "Bytes").
func parseContentRange(v string) (first, last, total int64, ok bool) {
	v = strings.TrimSpace(v)
	if len(v) < 6 || !strings.EqualFold(v[:6], "bytes ") {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(strings.TrimSpace(v[6:]), "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	last, err2 = strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	total, err3 = strconv.ParseInt(strings.TrimSpace(tot), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || total <= last {
		return 0, 0, 0, false
	}
	return first, last, total, true
}
