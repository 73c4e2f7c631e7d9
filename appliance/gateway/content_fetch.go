package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cmg-gateway/cmg/appliance/contentcache"
	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/tunnel"
	"github.com/cmg-gateway/cmg/version"
)

// How the gateway reaches a distribution point: it sends
//
//	GET /CCM_Proxy_ServerAuth/<DP RoleID>/<package>/<version>/<file>
//
// on a fresh stream to a connector that publishes the DP role (with
// server_auth), which rewrites the prefix to the DP's internal URL as for any
// role. A version's manifest is <package>/<version>/.manifest.json there. The
// same prefix from a device is refused (404): devices reach distribution
// points only through /cmg/v1/content/ with a content token.

// dpIndex lists the allowed distribution point roles per site, built from one
// allow-list (rebuilt when a reload replaces it).
type dpIndex struct {
	list   *allowList
	bySite map[string][]*allowedRole
}

// dpRoles returns the distribution point roles of the site a token names
// (by its code, or its name), in RoleID order.
func (cs *contentServer) dpRoles(tokenSite string) []*allowedRole {
	a := cs.g.allow.Load()
	site, ok := a.tokenSite(tokenSite)
	if !ok {
		return nil
	}
	idx := cs.dps.Load()
	if idx == nil || idx.list != a {
		idx = &dpIndex{list: a, bySite: map[string][]*allowedRole{}}
		for _, r := range a.roles {
			if r.Kind == tunnel.DistributionPoint {
				idx.bySite[r.Site] = append(idx.bySite[r.Site], r)
			}
		}
		for _, rs := range idx.bySite {
			sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
		}
		cs.dps.Store(idx)
	}
	return idx.bySite[site]
}

// get sends GET path (relative to the DP's root) to a distribution point of
// the site over a fresh stream and returns the response, its body streaming
// from the tunnel. Like forward, it tries another connector (or another DP of
// the site) while no response has arrived, and when a connector answers that
// it cannot reach its DP.
func (cs *contentServer) get(ctx context.Context, reqID string, dps []*allowedRole, path, rangeHdr string) (*http.Response, error) {
	g := cs.g
	var triedBuf [maxTries]*tunnel.Session
	tried := triedBuf[:0]
	var last error
	for len(tried) < maxTries && ctx.Err() == nil {
		var sess *tunnel.Session
		var role *allowedRole
		for _, r := range dps {
			if sess = g.reg.Pick(tunnel.AuthServer, r.ID, tried...); sess != nil {
				role = r
				break
			}
		}
		if sess == nil {
			break
		}
		tried = append(tried, sess)
		st, err := sess.Open()
		if err != nil {
			last = httperror.Wrap(httperror.BackendUnavailable, "the connector's tunnel failed", err)
			continue
		}
		resp, err := cs.exchange(ctx, sess, st, role, reqID, path, rangeHdr)
		if err != nil {
			last = err
			continue
		}
		if reason := httperror.Reason(resp.Header.Get(httperror.Header)); resp.StatusCode >= 500 && reason.Valid() {
			// The connector could not reach its DP; another one may.
			resp.Body.Close()
			last = httperror.New(reason, "the distribution point is unreachable from connector "+sess.Name)
			continue
		}
		return resp, nil
	}
	if last == nil {
		return nil, httperror.New(httperror.ConnectorUnavailable, "no connector serves the site's distribution point now")
	}
	if ctx.Err() != nil {
		return nil, httperror.Wrap(httperror.ClientClosed, "the request went away", ctx.Err())
	}
	return nil, last
}

// exchange writes the request on st and reads the response header. On error
// the stream is closed and released.
func (cs *contentServer) exchange(ctx context.Context, sess *tunnel.Session, st *yamux.Stream, role *allowedRole, reqID, path, rangeHdr string) (*http.Response, error) {
	g := cs.g
	body := &dpBody{g: g, sess: sess, st: st, counter: g.m.ingress[peerConnector][cs.dpIdx]}
	body.stop = context.AfterFunc(ctx, func() { st.Close() })
	bw := g.writers.Get().(*bufio.Writer)
	bw.Reset(st)
	n := writeDPRequest(bw, g, role.ID, reqID, path, rangeHdr)
	err := bw.Flush()
	bw.Reset(nil)
	g.writers.Put(bw)
	g.m.egress[peerConnector][cs.dpIdx].Add(float64(n))
	if err != nil {
		body.Close()
		return nil, httperror.Wrap(httperror.BackendUnavailable, "the connector's tunnel failed", err)
	}
	_ = st.SetReadDeadline(g.now().Add(g.cfg.Backend.ResponseHeaderTimeout))
	body.br = g.readers.Get().(*bufio.Reader)
	body.br.Reset(st)
	resp, err := readResponse(body.br, nil)
	if err != nil {
		body.Close()
		if errors.Is(err, yamux.ErrTimeout) || isTimeout(err) {
			return nil, httperror.Wrap(httperror.BackendTimeout, "no response from the distribution point in time", err)
		}
		return nil, httperror.Wrap(httperror.BackendUnavailable, "the connector did not answer", err)
	}
	body.counter.Add(float64(responseHeaderSize(resp.StatusCode, resp.Header)))
	body.body = resp.Body
	body.progress = g.cfg.Client.ProgressTimeout
	resp.Body = body
	return resp, nil
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// writeDPRequest writes the request for a distribution point and returns its
// size.
func writeDPRequest(bw *bufio.Writer, g *Gateway, roleID, reqID, path, rangeHdr string) int {
	n := 0
	ws := func(s string) { m, _ := bw.WriteString(s); n += m }
	ws("GET /")
	ws(prefixServer)
	ws("/")
	ws(roleID)
	ws("/")
	ws(path)
	ws(" HTTP/1.1\r\nHost: ")
	if g.cfg.ServiceName != "" {
		ws(g.cfg.ServiceName)
	} else {
		ws("cmg-gateway")
	}
	ws("\r\nUser-Agent: cmg-gateway/")
	ws(version.Version)
	ws("\r\n" + HeaderRequestID + ": ")
	ws(reqID)
	ws("\r\n" + HeaderInstance + ": ")
	ws(strconv.Itoa(g.cfg.Instance))
	if rangeHdr != "" {
		ws("\r\nRange: ")
		ws(rangeHdr)
	}
	ws("\r\nConnection: close\r\n\r\n")
	return n
}

// dpBody is a distribution point's response body on its stream: it keeps the
// stream's progress deadline, counts what it reads and, closed, closes the
// stream and gives back the pooled reader.
type dpBody struct {
	g        *Gateway
	sess     *tunnel.Session
	st       *yamux.Stream
	br       *bufio.Reader
	body     io.ReadCloser
	stop     func() bool
	counter  interface{ Add(float64) }
	progress time.Duration
	lastDL   time.Time
	closed   bool
}

func (b *dpBody) Read(p []byte) (int, error) {
	if now := b.g.now(); now.Sub(b.lastDL) > b.progress/4 {
		_ = b.st.SetReadDeadline(now.Add(b.progress))
		b.lastDL = now
	}
	n, err := b.body.Read(p)
	if n > 0 {
		b.counter.Add(float64(n))
	}
	return n, err
}

func (b *dpBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.stop()
	if b.body != nil {
		b.body.Close()
	}
	b.st.Close()
	b.sess.Release()
	if b.br != nil {
		b.br.Reset(nil)
		b.g.readers.Put(b.br)
	}
	return nil
}

// fetcher is how a cache fill gets a file: from offset 0, or resumed from
// where a broken fetch stopped (a 206 starting exactly there).
func (cs *contentServer) fetcher(reqID string, dps []*allowedRole, key contentcache.Key) contentcache.Fetcher {
	path := contentmanifest.FilePath(key.Package, key.Version, key.File)
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		var rangeHdr string
		if off > 0 {
			rangeHdr = "bytes=" + strconv.FormatInt(off, 10) + "-"
		}
		resp, err := cs.get(ctx, reqID, dps, path, rangeHdr)
		if err != nil {
			return nil, err
		}
		ok := off == 0 && resp.StatusCode == http.StatusOK ||
			off > 0 && resp.StatusCode == http.StatusPartialContent && rangeStart(resp.Header.Get("Content-Range")) == off
		if !ok {
			resp.Body.Close()
			return nil, httperror.New(httperror.BackendUnavailable,
				fmt.Sprintf("the distribution point answered %d for a file its manifest lists", resp.StatusCode))
		}
		return resp.Body, nil
	}
}

// rangeStart is the first byte of a Content-Range "bytes a-b/n", or -1.
func rangeStart(cr string) int64 {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return -1
	}
	a, _, ok := strings.Cut(s, "-")
	if !ok {
		return -1
	}
	v, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// manifest returns a package version's manifest, from memory or fetched
// once however many requests ask at the same time; fetched reports whether
// this request fetched it.
func (cs *contentServer) manifest(ctx context.Context, reqID string, dps []*allowedRole, pkg, ver string) (m *contentmanifest.Manifest, fetched bool, err error) {
	key := dps[0].Site + "\x00" + pkg + "\x00" + ver
	return cs.manifests.get(ctx, key, func() (*contentmanifest.Manifest, error) {
		return cs.fetchManifest(reqID, dps, pkg, ver)
	})
}

func (cs *contentServer) fetchManifest(reqID string, dps []*allowedRole, pkg, ver string) (*contentmanifest.Manifest, error) {
	ctx, cancel := context.WithTimeout(cs.ctx, cs.g.cfg.Backend.ResponseHeaderTimeout+cs.g.cfg.Client.ProgressTimeout)
	defer cancel()
	resp, err := cs.get(ctx, reqID, dps, contentmanifest.ManifestPath(pkg, ver), "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errNoVersion
	default:
		return nil, httperror.New(httperror.BackendUnavailable, fmt.Sprintf("the distribution point answered %d for the package's manifest", resp.StatusCode))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, contentmanifest.MaxBytes+1))
	if err != nil {
		return nil, httperror.Wrap(httperror.BackendUnavailable, "the package's manifest was cut off", err)
	}
	m, err := contentmanifest.Parse(data)
	if err == nil && (m.Package != pkg || m.Version != ver) {
		err = fmt.Errorf("the manifest is for %s version %s", m.Package, m.Version)
	}
	if err != nil {
		return nil, httperror.Wrap(httperror.BackendUnavailable, "the distribution point's manifest is not valid", err)
	}
	return m, nil
}

// errNoVersion: the site's distribution point does not have the version.
var errNoVersion = httperror.New(httperror.RouteNotFound, "the site's distribution point has no such package version")

// manifestCache keeps manifests for a while and makes concurrent requests for
// one share a fetch. A missing version is remembered briefly too, so a storm
// of requests for it does not each cross the tunnel.
type manifestCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*manifestEntry
}

type manifestEntry struct {
	done    chan struct{}
	man     *contentmanifest.Manifest
	err     error
	expires time.Time
}

// Bounds of the manifest cache.
const (
	maxManifests       = 4096
	missingManifestTTL = 5 * time.Second
)

func newManifestCache(ttl time.Duration, now func() time.Time) *manifestCache {
	return &manifestCache{ttl: ttl, now: now, m: map[string]*manifestEntry{}}
}

func (mc *manifestCache) get(ctx context.Context, key string, load func() (*contentmanifest.Manifest, error)) (m *contentmanifest.Manifest, loaded bool, err error) {
	now := mc.now()
	mc.mu.Lock()
	e := mc.m[key]
	if e != nil {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				e = nil
			}
		default:
		}
	}
	if e == nil {
		e = &manifestEntry{done: make(chan struct{})}
		if len(mc.m) >= maxManifests {
			mc.pruneLocked(now)
		}
		mc.m[key] = e
		mc.mu.Unlock()
		e.man, e.err = load()
		switch {
		case e.err == nil:
			e.expires = mc.now().Add(mc.ttl)
		case errors.Is(e.err, errNoVersion):
			e.expires = mc.now().Add(min(mc.ttl, missingManifestTTL))
		default:
			e.expires = time.Time{} // not kept: the next request tries again
		}
		close(e.done)
		return e.man, true, e.err
	}
	mc.mu.Unlock()
	select {
	case <-e.done:
		return e.man, false, e.err
	case <-ctx.Done():
		return nil, false, httperror.Wrap(httperror.ClientClosed, "the device went away", ctx.Err())
	}
}

// pruneLocked drops expired entries, and everything done when that is not
// enough.
func (mc *manifestCache) pruneLocked(now time.Time) {
	for k, e := range mc.m {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				delete(mc.m, k)
			}
		default:
		}
	}
	if len(mc.m) < maxManifests {
		return
	}
	for k, e := range mc.m {
		select {
		case <-e.done:
			delete(mc.m, k)
		default:
		}
	}
}

// passThrough streams a file from the site without caching it (a file larger
// than the cache, no room, or no cache): the device's Range goes to the DP. A
// whole-file download is still verified: its last bytes are held back until
// the SHA-256 matches, and the response is cut when it does not.
func (cs *contentServer) passThrough(x *exchange, dps []*allowedRole, key contentcache.Key, info contentcache.Info) {
	g := cs.g
	r := x.r
	rangeHdr := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); rangeHdr != "" && ir != "" && ir != info.ETag() {
		rangeHdr = "" // the device's partial copy is of another file: send it all
	}
	resp, err := cs.get(r.Context(), x.id, dps, contentmanifest.FilePath(key.Package, key.Version, key.File), rangeHdr)
	if err != nil {
		cs.fail(x, httperror.As(err, httperror.BackendUnavailable))
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength != info.Size {
			cs.fail(x, httperror.New(httperror.BackendUnavailable, "the distribution point's file is not the size its manifest says"))
			return
		}
	case http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
	default:
		cs.fail(x, httperror.New(httperror.BackendUnavailable, fmt.Sprintf("the distribution point answered %d for a file its manifest lists", resp.StatusCode)))
		return
	}
	h := x.w.Header()
	for _, k := range []string{"Content-Length", "Content-Range"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Accept-Ranges", "bytes")
	w := cs.writer(x, sourceTunnel)
	w.WriteHeader(resp.StatusCode)
	var verify *verifier
	if resp.StatusCode == http.StatusOK {
		verify = newVerifier(info)
	}
	buf := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(buf)
	for {
		n, rerr := resp.Body.Read(*buf)
		if n > 0 {
			if verify != nil && !verify.add((*buf)[:n]) {
				x.reason, x.errMsg = httperror.BackendUnavailable, "the streamed file does not match its published SHA-256"
				panic(http.ErrAbortHandler)
			}
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			x.reason, x.errMsg = httperror.BackendUnavailable, "the file was cut off mid-body: "+rerr.Error()
			panic(http.ErrAbortHandler)
		}
	}
}
