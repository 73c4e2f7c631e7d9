package roles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/contentmanifest"
)

// DPConfig is the simulated distribution point: its packages, and the uplink
// it serves them through.
type DPConfig struct {
	// Packages is the catalog. Every file's bytes are generated from the seed,
	// the package, the version and the file name (ContentReader), so a test
	// can compute what it should receive.
	Packages []PackageConfig `yaml:"packages"`
	// RateBytesPerSecond, when positive, caps the bytes per second of all file
	// downloads together (the site's uplink), so a test can act mid-file.
	RateBytesPerSecond configfile.Size `yaml:"rate_bytes_per_second,omitempty"`
}

// PackageConfig is one package version on the distribution point.
type PackageConfig struct {
	ID      string         `yaml:"id"`
	Version string         `yaml:"version"`
	Files   []DPFileConfig `yaml:"files"`
}

// DPFileConfig is one file of a package version.
type DPFileConfig struct {
	// Name is the file's path inside the version ("setup.exe", "x64/data.cab").
	Name string          `yaml:"name"`
	Size configfile.Size `yaml:"size"`
	// PublishSHA256, when set, is published in the manifest instead of the
	// file's real SHA-256: a site whose distribution point serves other bytes
	// than it published, to show that the gateway refuses them.
	PublishSHA256 string `yaml:"publish_sha256,omitempty"`
}

// DefaultDP is the catalog of `cmg loadtest roles` and the demo: a small
// application, and a 100 MiB package (the size of the product's scale test).
func DefaultDP() DPConfig {
	return DPConfig{Packages: []PackageConfig{
		{ID: "CMG00001", Version: "1", Files: []DPFileConfig{
			{Name: "setup.exe", Size: 1 << 20},
			{Name: "data/payload.cab", Size: 8 << 20},
		}},
		{ID: "CMG00002", Version: "1", Files: []DPFileConfig{
			{Name: "content.bin", Size: 100 << 20},
		}},
	}}
}

func (c DPConfig) validate(p *configfile.Problems) {
	seen := map[string]bool{}
	for i, pk := range c.Packages {
		at := fmt.Sprintf("distribution_point.packages[%d]", i)
		if err := contentmanifest.ValidSegment(pk.ID); err != nil {
			p.Addf(at+".id", "%v", err)
		}
		if err := contentmanifest.ValidSegment(pk.Version); err != nil {
			p.Addf(at+".version", "%v", err)
		}
		if seen[pk.ID+"/"+pk.Version] {
			p.Addf(at, "package %s version %s is listed twice", pk.ID, pk.Version)
		}
		seen[pk.ID+"/"+pk.Version] = true
		names := map[string]bool{}
		for j, f := range pk.Files {
			fat := fmt.Sprintf("%s.files[%d]", at, j)
			if err := contentmanifest.ValidFile(f.Name); err != nil {
				p.Addf(fat+".name", "%v", err)
			}
			if names[f.Name] {
				p.Addf(fat+".name", "%q is listed twice", f.Name)
			}
			names[f.Name] = true
			if f.Size < 0 || f.Size > 1<<40 {
				p.Addf(fat+".size", "must be 0 to 1 TiB")
			}
			if f.PublishSHA256 != "" && (len(f.PublishSHA256) != 64 || strings.Trim(f.PublishSHA256, "0123456789abcdef") != "") {
				p.Addf(fat+".publish_sha256", "must be 64 lower-case hex digits")
			}
		}
	}
	if c.RateBytesPerSecond < 0 {
		p.Addf("distribution_point.rate_bytes_per_second", "must not be negative")
	}
}

// ContentReader returns the bytes the simulated distribution point serves for
// a file, given the roles' seed.
func ContentReader(seed uint64, pkg, version, name string, size int64) *BlobReader {
	return NewBlobReader(contentSeed(seed, pkg, version, name), size)
}

func contentSeed(seed uint64, pkg, version, name string) uint64 {
	return seed ^ keyHash("dp\x00"+pkg+"\x00"+version+"\x00"+name)
}

// dpCatalog is the distribution point's packages, with each file's SHA-256
// computed once, when first asked for.
type dpCatalog struct {
	versions map[string]*dpVersion // by "<id>/<version>"
	limiter  *rate.Limiter
}

type dpVersion struct {
	id, version string
	files       []*dpFile
	byName      map[string]*dpFile
}

type dpFile struct {
	name    string
	size    int64
	seed    uint64
	publish string
	once    sync.Once
	sum     string
}

func newDPCatalog(seed uint64, c DPConfig) *dpCatalog {
	cat := &dpCatalog{versions: map[string]*dpVersion{}}
	if c.RateBytesPerSecond > 0 {
		burst := int(min(c.RateBytesPerSecond, 256<<10))
		cat.limiter = rate.NewLimiter(rate.Limit(c.RateBytesPerSecond), burst)
	}
	for _, pk := range c.Packages {
		v := &dpVersion{id: pk.ID, version: pk.Version, byName: map[string]*dpFile{}}
		for _, f := range pk.Files {
			df := &dpFile{name: f.Name, size: int64(f.Size), seed: contentSeed(seed, pk.ID, pk.Version, f.Name), publish: f.PublishSHA256}
			v.files = append(v.files, df)
			v.byName[f.Name] = df
		}
		cat.versions[pk.ID+"/"+pk.Version] = v
	}
	return cat
}

// sha256 is the file's real SHA-256.
func (f *dpFile) sha256() string {
	f.once.Do(func() {
		h := sha256.New()
		_, _ = NewBlobReader(f.seed, f.size).WriteTo(h)
		f.sum = hex.EncodeToString(h.Sum(nil))
	})
	return f.sum
}

// published is the SHA-256 the manifest gives for the file.
func (f *dpFile) published() string {
	if f.publish != "" {
		return f.publish
	}
	return f.sha256()
}

// manifest is what the distribution point publishes for a version.
func (v *dpVersion) manifest() contentmanifest.Manifest {
	m := contentmanifest.Manifest{Package: v.id, Version: v.version, Files: make([]contentmanifest.File, 0, len(v.files))}
	for _, f := range v.files {
		m.Files = append(m.Files, contentmanifest.File{Name: f.name, Size: f.size, SHA256: f.published()})
	}
	return m
}

// serveDP answers a request under /dp/: <package>/<version>/.manifest.json
// (the manifest) and <package>/<version>/<file> (Range, HEAD, If-Range and
// ETag by http.ServeContent), as an IIS distribution point's content share.
func (s *Server) serveDP(w http.ResponseWriter, r *http.Request, rest, lower string) {
	if lower == "/healthz" {
		s.serveHealth(w, RoleDP)
		return
	}
	if s.serveHelper(w, r, RoleDP, lower) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	pkg, ver, file, ok := contentmanifest.SplitDevicePath(strings.TrimPrefix(rest, "/"))
	v := s.dp.versions[pkg+"/"+ver]
	if !ok || v == nil {
		s.notFound(w)
		return
	}
	if file == contentmanifest.ManifestName {
		s.counters.kind(kindDPManifest)
		writeJSON(w, http.StatusOK, v.manifest())
		return
	}
	f := v.byName[file]
	if f == nil {
		s.notFound(w)
		return
	}
	s.counters.kind(kindDPFile)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+f.sha256()+`"`)
	if s.dp.limiter != nil {
		w = &paced{ResponseWriter: w, l: s.dp.limiter, ctx: r.Context()}
	}
	http.ServeContent(w, r, "", blobModTime, NewBlobReader(f.seed, f.size))
}

// paced writes no faster than its limiter allows.
type paced struct {
	http.ResponseWriter
	l   *rate.Limiter
	ctx context.Context
}

func (p *paced) Write(b []byte) (int, error) {
	var n int
	for len(b) > 0 {
		chunk := b[:min(len(b), p.l.Burst())]
		if err := p.l.WaitN(p.ctx, len(chunk)); err != nil {
			return n, err
		}
		m, err := p.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		b = b[len(chunk):]
	}
	return n, nil
}

// ReadFrom keeps writes going through Write (and so through the limiter).
func (p *paced) ReadFrom(src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{p}, src, *bp)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (p *paced) Unwrap() http.ResponseWriter { return p.ResponseWriter }
