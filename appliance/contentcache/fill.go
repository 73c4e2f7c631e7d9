package contentcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"time"
)

// fill is one file being fetched into the cache.
type fill struct {
	c    *Cache
	key  Key
	id   string
	info Info
	acct int64
	tmp  string
	file *os.File

	// Under Cache.mu: the readers plus the fill's own goroutine, and whether
	// the file made it into the cache (then entry is pinned until refs is 0).
	refs      int
	committed bool
	entry     *entry

	mu      sync.Mutex
	written int64
	avail   int64 // what readers may read: written, less the held-back last byte until verified
	done    bool
	err     error
	wake    chan struct{} // closed (and replaced) whenever avail, done or err change
}

// copyBufs are the fills' read buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// run fetches, verifies and commits the file, then lets go of it.
func (f *fill) run(fetch Fetcher) {
	defer f.c.wg.Done()
	defer f.release()
	err := f.download(fetch)
	if err == nil {
		f.finish(nil) // the readers may have the whole file now
		if err = f.commit(); err != nil {
			f.forget()
			f.c.log.Error("contentcache: cannot keep a verified file; it was served but not cached", f.logAttrs(err)...)
		}
		return
	}
	// Forgotten first, so that a request arriving now starts a new fill
	// rather than joining this failed one.
	f.forget()
	f.finish(err)
	f.c.log.Warn("contentcache: fetch failed; nothing was cached", f.logAttrs(err)...)
}

// forget deletes the temporary file and takes the fill out of the index.
func (f *fill) forget() {
	_ = os.Remove(f.tmp)
	f.c.mu.Lock()
	delete(f.c.fills, f.id)
	f.c.mu.Unlock()
}

func (f *fill) logAttrs(err error) []any {
	return []any{"site", f.key.Site, "package", f.key.Package, "version", f.key.Version, "file", f.key.File, "size", f.info.Size, "err", err}
}

// download fetches the whole file into the temporary file, resuming a broken
// fetch from the byte it reached, and checks its size and SHA-256.
func (f *fill) download(fetch Fetcher) error {
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var written int64
	failures := 0
	for written < f.info.Size {
		err := f.c.ctx.Err()
		if err == nil {
			var body io.ReadCloser
			body, err = fetch(f.c.ctx, written)
			if err == nil {
				var n int64
				n, err = f.copy(body, h, *bp, written)
				body.Close()
				written += n
				if err == nil && written < f.info.Size {
					err = io.ErrUnexpectedEOF
				}
				if n > 0 {
					failures = 0
				}
			}
		}
		if written == f.info.Size && err == nil {
			break
		}
		if errors.Is(err, ErrSizeMismatch) {
			return err
		}
		if f.c.ctx.Err() != nil {
			return ErrClosed
		}
		failures++
		if failures > maxRetries {
			return fmt.Errorf("fetch broke off at byte %d of %d: %w", written, f.info.Size, err)
		}
		f.c.log.Debug("contentcache: resuming a broken fetch", "file", f.id, "at", written, "err", err)
		if !f.sleep(f.c.retryDelay << (failures - 1)) {
			return ErrClosed
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if !bytes.Equal(sum[:], f.info.SHA256[:]) {
		return fmt.Errorf("%w: got %s, want %s", ErrHashMismatch, hex.EncodeToString(sum[:]), hex.EncodeToString(f.info.SHA256[:]))
	}
	return nil
}

// copy writes body into the file from offset off, hashing and publishing as
// it goes; it returns the bytes written.
func (f *fill) copy(body io.Reader, h hash.Hash, buf []byte, off int64) (int64, error) {
	var n int64
	for {
		m, rerr := body.Read(buf)
		if m > 0 {
			if off+n+int64(m) > f.info.Size {
				return n, fmt.Errorf("%w (%d bytes)", ErrSizeMismatch, f.info.Size)
			}
			if _, err := f.file.WriteAt(buf[:m], off+n); err != nil {
				return n, fmt.Errorf("write the cache file: %w", err)
			}
			h.Write(buf[:m])
			n += int64(m)
			f.publish(off + n)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func (f *fill) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.c.ctx.Done():
		return false
	}
}

// publish lets readers have the bytes written so far, but the last one.
func (f *fill) publish(written int64) {
	f.mu.Lock()
	f.written = written
	f.avail = min(written, f.info.Size-1)
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// finish ends the fill for its readers: all of the file, or the error.
func (f *fill) finish(err error) {
	f.mu.Lock()
	f.done = true
	f.err = err
	if err == nil {
		f.avail = f.info.Size
	}
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// state is what a reader needs to know.
func (f *fill) state() (avail int64, wake <-chan struct{}, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.avail, f.wake, f.err
}

// commit makes the verified file durable and puts it into the cache, pinned
// until the fill's readers are done with the temporary file's descriptor.
func (f *fill) commit() error {
	if err := f.file.Sync(); err != nil {
		return err
	}
	final := f.c.entryPath(f.id, f.info.SHA256)
	if err := os.Rename(f.tmp, final); err != nil {
		return err
	}
	c := f.c
	now := c.now()
	_ = os.Chtimes(final, now, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.fills, f.id)
	e := &entry{id: f.id, info: f.info, acct: f.acct, refs: 1, touched: now}
	e.elem = c.lru.PushFront(e)
	c.entries[f.id] = e
	f.entry = e
	f.committed = true
	return nil
}

// release drops one reference; the last one closes the temporary file's
// descriptor and hands its space over to the cached file, or gives it back.
func (f *fill) release() {
	c := f.c
	c.mu.Lock()
	f.refs--
	if f.refs > 0 {
		c.mu.Unlock()
		return
	}
	if f.committed {
		f.entry.refs--
	} else {
		c.used -= f.acct
	}
	c.mu.Unlock()
	f.file.Close()
}
