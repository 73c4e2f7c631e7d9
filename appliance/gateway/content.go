package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/appliance/contentcache"
	"github.com/cmg-gateway/cmg/appliance/httperror"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/tunnel"
)

// ContentConfig is the cloud distribution point (DESIGN section 7): devices
// download packages from /cmg/v1/content/<package>/<version>/<file> with a
// content token, served from this instance's pull-through cache or fetched
// from a distribution point of the site the token names.
type ContentConfig struct {
	// ServeContent is the original product's "allow the gateway to function
	// as a cloud distribution point" switch. Default true; off, the content
	// path answers 404 RouteNotFound. Reloaded on SIGHUP.
	ServeContent bool `yaml:"serve_content"`
	// Cache is the disk cache; without a dir every download streams through
	// from the site.
	Cache contentcache.Config `yaml:"cache"`
	// ManifestTTL is how long a package version's manifest (sizes and hashes
	// of its files) is kept in memory; only files not yet cached need it.
	ManifestTTL time.Duration `yaml:"manifest_ttl"`
}

// DefaultContentConfig is the content section's defaults.
func DefaultContentConfig() ContentConfig {
	return ContentConfig{ServeContent: true, Cache: contentcache.DefaultConfig(), ManifestTTL: time.Minute}
}

// Validate reports every problem of the section.
func (c ContentConfig) Validate() error {
	var ps configfile.Problems
	ps.Merge("cache", c.Cache.Validate())
	if c.ManifestTTL < 0 {
		ps.Addf("manifest_ttl", "must not be negative")
	}
	return ps.Err()
}

// isContentPath reports whether a request is for the content endpoint.
func isContentPath(p string) bool { return strings.HasPrefix(p, contentmanifest.DevicePrefix) }

// contentServer is the content endpoint of one gateway instance.
type contentServer struct {
	g         *Gateway
	on        atomic.Bool
	cache     *contentcache.Cache // nil: no disk cache
	cacheDir  string
	manifests *manifestCache
	m         *contentMetrics
	dps       atomic.Pointer[dpIndex]
	dpIdx     int

	ctx    context.Context // fetches that outlive one device's request
	cancel context.CancelFunc
}

func newContentServer(g *Gateway) (*contentServer, error) {
	cfg := g.cfg.Content
	cs := &contentServer{g: g, dpIdx: kindIndex(tunnel.DistributionPoint), cacheDir: cfg.Cache.Dir}
	cs.on.Store(cfg.ServeContent)
	cs.ctx, cs.cancel = context.WithCancel(context.Background())
	cs.manifests = newManifestCache(cfg.ManifestTTL, g.now)
	if cfg.Cache.Dir != "" {
		var err error
		cs.cache, err = contentcache.Open(cfg.Cache, contentcache.Options{Logger: g.log, Now: g.now})
		if err != nil {
			return nil, fmt.Errorf("gateway: content cache: %w", err)
		}
	} else if cfg.ServeContent {
		g.log.Warn("gateway: content.cache.dir is not set: every content download crosses the tunnel")
	}
	var err error
	if cs.m, err = newContentMetrics(g.prom, cs.cache); err != nil {
		cs.close()
		return nil, err
	}
	return cs, nil
}

// reload applies what a reload may change: the switch and the sites. The
// cache's directory and bound need a restart.
func (cs *contentServer) reload(cfg Config) {
	cs.on.Store(cfg.Content.ServeContent)
	if cfg.Content.Cache.Dir != cs.cacheDir {
		cs.g.log.Warn("gateway: content.cache changes take effect at the next restart")
	}
}

// close stops fetches in progress and the cache.
func (cs *contentServer) close() {
	cs.cancel()
	if cs.cache != nil {
		cs.cache.Close()
	}
}

// Results of content requests (cmg_content_requests_total{result}).
const (
	contentHit = iota
	contentMiss
	contentError
)

// Sources of served content bytes (cmg_content_served_bytes_total{source}).
const (
	sourceCache = iota
	sourceTunnel
)

// serveContent serves GET and HEAD of /cmg/v1/content/<package>/<version>/<file>:
// content token, package scope, the token's site, then the cache or the site's
// distribution point.
func (g *Gateway) serveContent(x *exchange) {
	cs := g.content
	x.kindIdx = cs.dpIdx
	result := contentError
	defer func() { cs.count(x, result) }()
	r := x.r
	if !cs.on.Load() {
		g.fail(x, httperror.New(httperror.RouteNotFound, "this gateway does not serve content"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.fail(x, httperror.New(httperror.MethodNotAllowed, "content is downloaded with GET or HEAD"))
		return
	}
	if err := checkPath(r); err != nil {
		g.fail(x, err)
		return
	}
	pkg, ver, file, ok := contentmanifest.SplitDevicePath(strings.TrimPrefix(r.URL.Path, contentmanifest.DevicePrefix))
	if !ok {
		g.fail(x, httperror.New(httperror.RouteNotFound, "content paths are /cmg/v1/content/<package>/<version>/<file>"))
		return
	}
	if contentmanifest.ValidSegment(pkg) != nil || contentmanifest.ValidSegment(ver) != nil || contentmanifest.ValidFile(file) != nil {
		g.fail(x, httperror.New(httperror.BadRequest, "the package, version or file name has characters content names may not have"))
		return
	}
	id, err := g.auth.AuthenticateContent(r)
	if err != nil {
		g.fail(x, httperror.As(err, httperror.InvalidToken))
		return
	}
	x.ident = id
	g.observeDevice(id.Device)
	tokenPkg, _ := id.Claims["pkg"].(string)
	site, _ := id.Claims["site"].(string)
	if tokenPkg != pkg {
		g.fail(x, httperror.New(httperror.PolicyDenied, "the content token is for another package"))
		return
	}
	dps := cs.dpRoles(site)
	if len(dps) == 0 {
		g.fail(x, httperror.New(httperror.RouteNotFound, "the token's site has no distribution point on this gateway"))
		return
	}
	x.role = dps[0]
	if !g.admit(x) {
		return
	}
	defer x.permit.Release()
	g.m.inflight[x.kindIdx].Inc()
	defer g.m.inflight[x.kindIdx].Dec()

	key := contentcache.Key{Site: site, Package: pkg, Version: ver, File: file}
	ctx := r.Context()
	if cs.cache != nil {
		if rd := cs.cache.Lookup(ctx, key); rd != nil {
			result = contentHit
			cs.serveReader(x, rd, sourceCache)
			return
		}
	}
	man, fetched, err := cs.manifest(ctx, x.id, dps, pkg, ver)
	if err != nil {
		g.fail(x, httperror.As(err, httperror.BackendUnavailable))
		return
	}
	mf, ok := man.Lookup(file)
	if !ok {
		g.fail(x, httperror.New(httperror.RouteNotFound, "the package version has no such file"))
		return
	}
	info := contentcache.Info{Size: mf.Size, SHA256: mf.Sum()}
	setContentHeaders(x, info)
	if r.Method == http.MethodHead || notModified(r, info.ETag()) {
		// Answered from the manifest: a miss only when this request fetched it.
		result = contentHit
		if fetched {
			result = contentMiss
		}
		http.ServeContent(cs.writer(x, sourceTunnel), r, "", time.Time{}, &sizeOnly{size: info.Size})
		return
	}
	if cs.cache != nil {
		rd, err := cs.cache.Fill(ctx, key, info, cs.fetcher(x.id, dps, key))
		if err == nil {
			// A hit when the file was cached meanwhile or its fetch was
			// already under way.
			src := sourceCache
			result = contentHit
			if rd.Started() {
				result, src = contentMiss, sourceTunnel
			}
			cs.serveReader(x, rd, src)
			return
		}
		if !errors.Is(err, contentcache.ErrTooLarge) && !errors.Is(err, contentcache.ErrNoRoom) {
			g.log.Warn("gateway: content cache unavailable; streaming through", "request_id", x.id, "err", err)
		}
	}
	result = contentMiss
	cs.passThrough(x, dps, key, info)
}

// count records a content request's result.
func (cs *contentServer) count(x *exchange, result int) {
	if x.reason != "" && x.reason != httperror.ClientClosed {
		result = contentError
	}
	cs.m.requests[result].Inc()
}

// setContentHeaders sets the headers every content response carries.
func setContentHeaders(x *exchange, info contentcache.Info) {
	h := x.w.Header()
	h.Set("ETag", info.ETag())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "private")
	h.Set("CMG-Request-ID", x.id)
	// Multiple ranges are served as the whole file (RFC 9110 lets a server
	// ignore Range); background transfer clients ask for one range at a time.
	if rg := x.r.Header.Get("Range"); strings.Contains(rg, ",") {
		x.r.Header.Del("Range")
	}
}

// serveReader serves a cache reader (Range, HEAD, If-None-Match, If-Range by
// http.ServeContent). A fill that fails before its first byte gets an error
// status; one that fails later cuts the response.
func (cs *contentServer) serveReader(x *exchange, rd *contentcache.Reader, src int) {
	defer rd.Close()
	setContentHeaders(x, rd.Info())
	if err := rd.Ready(); err != nil {
		cs.fail(x, fillError(x, err))
		return
	}
	http.ServeContent(cs.writer(x, src), x.r, "", time.Time{}, rd)
	if err := rd.Err(); err != nil && x.reason == "" {
		cs.fail(x, fillError(x, err))
	}
}

// fail answers an error once content headers may have been set.
func (cs *contentServer) fail(x *exchange, e *httperror.Error) {
	if !x.w.wroteHeader {
		h := x.w.Header()
		h.Del("ETag")
		h.Del("Accept-Ranges")
		h.Del("Content-Range")
		h.Del("Content-Length")
	}
	cs.g.fail(x, e)
}

// fillError is the device's error for a failed read of a cache reader.
func fillError(x *exchange, err error) *httperror.Error {
	if x.r.Context().Err() != nil {
		return httperror.Wrap(httperror.ClientClosed, "the device went away", err)
	}
	if e, ok := errors.AsType[*httperror.Error](err); ok {
		return e
	}
	return httperror.Wrap(httperror.BackendUnavailable, "the content could not be fetched from the site", err)
}

// notModified reports whether If-None-Match names etag (weak comparison, as
// RFC 9110 says for If-None-Match).
func notModified(r *http.Request, etag string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	for v := range strings.SplitSeq(inm, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}

// sizeOnly stands in for the content when no body is sent (HEAD, 304): it
// has a size and no bytes.
type sizeOnly struct{ size, off int64 }

var errNoBody = errors.New("no body is sent")

func (s *sizeOnly) Read([]byte) (int, error) { return 0, errNoBody }

func (s *sizeOnly) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekEnd:
		off += s.size
	case io.SeekCurrent:
		off += s.off
	}
	s.off = off
	return off, nil
}
