// Package contentcache is the gateway's pull-through cache of content files
// (DESIGN section 7, the cloud distribution point): a file is fetched once
// through the tunnel, verified against the size and SHA-256 its site publishes,
// kept on local disk and served to every later device from there.
//
// How it holds its promises:
//
//   - One fetch per file: the first request for an uncached file starts a fill;
//     every request for the same file while it runs joins it and is served from
//     the growing file as the bytes arrive (never waiting for the whole file).
//   - Nothing unverified is ever served whole: a fill writes to a temporary file
//     and holds back the last byte from its readers until the whole file is
//     there and its SHA-256 matches; only then is it renamed into the cache. A
//     fill that fails (the tunnel broke and could not be resumed, the size or
//     the hash is wrong) is deleted, and its readers get an error, so a device
//     sees a broken response, never a complete wrong one.
//   - The disk bound is strict: a fill reserves its file's whole size before it
//     writes a byte; to make room the least recently used file that no one is
//     reading is deleted. A file that is being read is never deleted (its blocks
//     would stay allocated until the last reader closed it), so when every file
//     is in use there is no room and the caller streams the file through
//     uncached. Sizes are counted in whole 4 KiB blocks plus one block per file.
//   - It survives restarts: a cached file is named <key id>-<sha256>, renamed
//     into place only after it was verified and synced, so its presence is its
//     proof; at start the directory is scanned, temporary files are deleted and
//     the least recently used order is rebuilt from modification times (a hit
//     touches its file at most once a minute).
//
// Package versions are immutable (a changed package is a new version), so a
// cached file is never revalidated with the site.
package contentcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Key names a file: the site whose distribution point serves it, the package,
// the version and the file's path inside the version.
type Key struct {
	Site, Package, Version, File string
}

// id is the key's file-name-safe identity: the hex SHA-256 of its fields.
func (k Key) id() string {
	h := sha256.New()
	for _, s := range [...]string{k.Site, k.Package, k.Version, k.File} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Info is what the site publishes for a file.
type Info struct {
	Size   int64
	SHA256 [32]byte
}

// ETag is the file's strong entity tag: its quoted hex SHA-256, so a client
// can check what it downloaded against the tag.
func (i Info) ETag() string { return `"` + hex.EncodeToString(i.SHA256[:]) + `"` }

// The errors of Fill and of a fill's readers.
var (
	// ErrTooLarge: the file is larger than the whole cache; stream it through.
	ErrTooLarge = errors.New("contentcache: the file is larger than the cache")
	// ErrNoRoom: every cached file is being read, so none can be evicted to
	// make room; stream the file through.
	ErrNoRoom = errors.New("contentcache: no room (every cached file is in use)")
	// ErrHashMismatch: the fetched bytes do not have the published SHA-256.
	ErrHashMismatch = errors.New("contentcache: the content does not match the published SHA-256")
	// ErrSizeMismatch: the site sent more bytes than the published size.
	ErrSizeMismatch = errors.New("contentcache: the content is longer than the published size")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("contentcache: closed")
)

// Fetcher opens the file's bytes from offset to its end. A fill calls it with
// offset 0, and again with the offset it reached when a fetch broke off, so a
// fill survives a connector going away mid-file.
type Fetcher func(ctx context.Context, offset int64) (io.ReadCloser, error)

// Options are what Open takes besides the configuration.
type Options struct {
	// Logger receives evictions, failed fills and files found at start that are
	// not the cache's; nil discards.
	Logger *slog.Logger
	// Now is the clock for the least-recently-used touches; nil is time.Now.
	Now func() time.Time
	// RetryDelay is the first pause before a broken fetch is resumed (doubling
	// after each failure without progress). Default 100ms.
	RetryDelay time.Duration
}

// Fill resumes a broken fetch at most this many times in a row without
// progress before it gives up.
const maxRetries = 3

// blockSize is the allocation unit sizes are counted in.
const blockSize = 4096

// touchEvery bounds how often a hit touches its file's modification time.
const touchEvery = time.Minute

// lockName is the lock file that keeps two processes off one directory.
const lockName = ".lock"

// accountFor is the disk space a file of n bytes is counted for: whole blocks
// plus one block for the file system's own bookkeeping.
func accountFor(n int64) int64 {
	return (n+blockSize-1)/blockSize*blockSize + blockSize
}

// entry is one complete, verified file on disk.
type entry struct {
	id      string
	info    Info
	acct    int64
	refs    int // readers (and a fill handing its readers over); under Cache.mu
	elem    *list.Element
	touched time.Time
}

// Cache is the content cache of one gateway instance.
type Cache struct {
	dir        string
	max        int64
	log        *slog.Logger
	now        func() time.Time
	retryDelay time.Duration
	lock       *os.File

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	entries   map[string]*entry
	lru       *list.List // of *entry, most recently used first
	fills     map[string]*fill
	used      int64 // accounted bytes of entries and of fills' reservations
	evictions uint64
	closed    bool
}

// Open checks cfg, creates the directory if needed, takes its lock and loads
// what a previous run left there. It starts nothing; fills run as requests
// start them, until Close.
func Open(cfg Config, opts Options) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("contentcache: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 100 * time.Millisecond
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("contentcache: %w", err)
	}
	lock, err := lockDir(filepath.Join(cfg.Dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("contentcache: %s: %w", cfg.Dir, err)
	}
	c := &Cache{
		dir: cfg.Dir, max: int64(cfg.MaxBytes), log: opts.Logger, now: opts.Now, retryDelay: opts.RetryDelay, lock: lock,
		entries: map[string]*entry{}, lru: list.New(), fills: map[string]*fill{},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.load(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// load indexes the files a previous run left, deletes its temporary files and
// evicts down to the bound (it may have been lowered).
func (c *Cache) load() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("contentcache: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if name == lockName {
			continue
		}
		if isTemp(name) {
			if err := os.Remove(filepath.Join(c.dir, name)); err != nil {
				return fmt.Errorf("contentcache: remove a partial file: %w", err)
			}
			continue
		}
		id, sum, ok := parseEntryName(name)
		fi, err := de.Info()
		if !ok || err != nil || !fi.Mode().IsRegular() {
			c.log.Warn("contentcache: a file in the cache directory is not the cache's; left alone (it is not counted)", "file", name)
			continue
		}
		if old := c.entries[id]; old != nil {
			// Two versions of one key (the site republished it): keep the newer.
			if old.touched.After(fi.ModTime()) {
				_ = os.Remove(filepath.Join(c.dir, name))
				continue
			}
			_ = os.Remove(c.path(old))
		}
		c.entries[id] = &entry{id: id, info: Info{Size: fi.Size(), SHA256: sum}, acct: accountFor(fi.Size()), touched: fi.ModTime()}
	}
	found := make([]*entry, 0, len(c.entries))
	for _, e := range c.entries {
		found = append(found, e)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].touched.After(found[j].touched) })
	for _, e := range found {
		e.elem = c.lru.PushBack(e)
		c.used += e.acct
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.used > c.max {
		c.evictLocked(c.lru.Back().Value.(*entry))
	}
	if len(c.entries) > 0 {
		c.log.Info("contentcache: loaded", "dir", c.dir, "files", len(c.entries), "bytes", c.used, "max_bytes", c.max)
	}
	return nil
}

// Close stops the fills in progress (their readers get ErrClosed) and waits
// for them. Readers of complete files keep working until they close.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.lock != nil {
		c.lock.Close()
	}
}

// Stats is a snapshot of the cache.
type Stats struct {
	// Bytes is the space counted against the bound: complete files and the
	// whole size of files being fetched.
	Bytes    int64
	MaxBytes int64
	// Files are the complete files; Fills the files being fetched.
	Files, Fills int
	Evictions    uint64
}

// Stats returns a snapshot.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Bytes: c.used, MaxBytes: c.max, Files: len(c.entries), Fills: len(c.fills), Evictions: c.evictions}
}

// Bytes is Stats().Bytes.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Lookup returns a reader of the file when it is cached (Reader.Cached) or
// being fetched (joined: it reads the bytes as they arrive), and nil when the
// file must be fetched. ctx bounds a reader's waits for bytes.
func (c *Cache) Lookup(ctx context.Context, k Key) *Reader {
	id := k.id()
	c.mu.Lock()
	if e := c.entries[id]; e != nil {
		return c.openEntryLocked(ctx, e)
	}
	if f := c.fills[id]; f != nil {
		f.refs++
		c.mu.Unlock()
		return &Reader{c: c, ctx: ctx, info: f.info, f: f}
	}
	c.mu.Unlock()
	return nil
}

// Fill returns a reader of the file, starting a fill with fetch unless the
// file is cached or being fetched already (then it is that file's reader, as
// Lookup's). Reader.Started tells which. It returns ErrTooLarge or ErrNoRoom
// when the file cannot be cached now: the caller streams it through.
func (c *Cache) Fill(ctx context.Context, k Key, info Info, fetch Fetcher) (*Reader, error) {
	acct := accountFor(info.Size)
	if acct > c.max {
		return nil, ErrTooLarge
	}
	id := k.id()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if e := c.entries[id]; e != nil {
		if r := c.openEntryLocked(ctx, e); r != nil {
			return r, nil
		}
		c.mu.Lock()
	}
	if f := c.fills[id]; f != nil {
		f.refs++
		c.mu.Unlock()
		return &Reader{c: c, ctx: ctx, info: f.info, f: f}, nil
	}
	if !c.reserveLocked(acct) {
		c.mu.Unlock()
		return nil, ErrNoRoom
	}
	file, err := os.CreateTemp(c.dir, id+".*.tmp")
	if err != nil {
		c.used -= acct
		c.mu.Unlock()
		return nil, fmt.Errorf("contentcache: %w", err)
	}
	f := &fill{c: c, key: k, id: id, info: info, acct: acct, tmp: file.Name(), file: file, refs: 2, wake: make(chan struct{})}
	c.fills[id] = f
	c.mu.Unlock()
	c.wg.Add(1)
	go f.run(fetch)
	return &Reader{c: c, ctx: ctx, info: info, f: f, started: true}, nil
}

// openEntryLocked pins e and opens its file; it unlocks c.mu. A file that
// cannot be opened (removed behind the cache's back) is dropped from the
// index and nil returned.
func (c *Cache) openEntryLocked(ctx context.Context, e *entry) *Reader {
	e.refs++
	c.lru.MoveToFront(e.elem)
	now := c.now()
	touch := now.Sub(e.touched) > touchEvery
	if touch {
		e.touched = now
	}
	c.mu.Unlock()
	path := c.path(e)
	file, err := os.Open(path)
	if err != nil {
		c.log.Warn("contentcache: a cached file is gone; dropping it", "file", filepath.Base(path), "err", err)
		c.mu.Lock()
		e.refs--
		if c.entries[e.id] == e && e.refs == 0 {
			c.removeLocked(e)
		}
		c.mu.Unlock()
		return nil
	}
	if touch {
		_ = os.Chtimes(path, now, now)
	}
	return &Reader{c: c, ctx: ctx, info: e.info, e: e, file: file, cached: true}
}

// reserveLocked counts n more bytes, evicting least recently used files that
// no one reads until they fit. It reports false (and evicts nothing more) when
// they cannot fit.
func (c *Cache) reserveLocked(n int64) bool {
	for c.used+n > c.max {
		var victim *entry
		for el := c.lru.Back(); el != nil; el = el.Prev() {
			if e := el.Value.(*entry); e.refs == 0 {
				victim = e
				break
			}
		}
		if victim == nil {
			return false
		}
		c.evictLocked(victim)
	}
	c.used += n
	return true
}

// evictLocked deletes e's file and forgets it.
func (c *Cache) evictLocked(e *entry) {
	c.removeLocked(e)
	c.evictions++
	if err := os.Remove(c.path(e)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Error("contentcache: cannot delete an evicted file", "file", filepath.Base(c.path(e)), "err", err)
	}
	c.log.Debug("contentcache: evicted", "file", filepath.Base(c.path(e)), "bytes", e.info.Size)
}

func (c *Cache) removeLocked(e *entry) {
	delete(c.entries, e.id)
	c.lru.Remove(e.elem)
	c.used -= e.acct
}

func (c *Cache) unpin(e *entry) {
	c.mu.Lock()
	e.refs--
	c.mu.Unlock()
}

func (c *Cache) path(e *entry) string { return c.entryPath(e.id, e.info.SHA256) }

func (c *Cache) entryPath(id string, sum [32]byte) string {
	return filepath.Join(c.dir, id+"-"+hex.EncodeToString(sum[:]))
}

// parseEntryName splits "<64 hex>-<64 hex>".
func parseEntryName(name string) (id string, sum [32]byte, ok bool) {
	id, s, found := strings.Cut(name, "-")
	if !found || len(id) != 64 || len(s) != 64 || !isLowerHex(id) || !isLowerHex(s) {
		return "", sum, false
	}
	_, _ = hex.Decode(sum[:], []byte(s))
	return id, sum, true
}

// isTemp recognises a fill's temporary file: "<64 hex>.<random>.tmp".
func isTemp(name string) bool {
	return len(name) > 69 && isLowerHex(name[:64]) && name[64] == '.' && strings.HasSuffix(name, ".tmp")
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
