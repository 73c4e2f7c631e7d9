package contentcache

import (
	"context"
	"errors"
	"io"
	"os"
)

// Reader reads one file of the cache: a complete one, or one being fetched
// (a read past the bytes fetched so far waits for them). It is an
// io.ReadSeeker, as http.ServeContent wants, and must be closed: while it is
// open its file is never evicted.
type Reader struct {
	c    *Cache
	ctx  context.Context
	info Info

	e      *entry
	file   *os.File
	cached bool

	f       *fill
	started bool

	off    int64
	err    error
	closed bool
}

var errSeek = errors.New("contentcache: seek to a negative offset")

// Info is the file's size and SHA-256.
func (r *Reader) Info() Info { return r.info }

// Cached reports whether the file was complete in the cache when the reader
// was opened.
func (r *Reader) Cached() bool { return r.cached }

// Started reports whether this reader's Fill call started the fetch.
func (r *Reader) Started() bool { return r.started }

// Err is the error that ended a read early (a failed fill, a gone context, a
// disk error), or nil.
func (r *Reader) Err() error { return r.err }

// Read reads from the current offset.
func (r *Reader) Read(p []byte) (int, error) {
	size := r.info.Size
	if r.off >= size {
		return 0, io.EOF
	}
	if rem := size - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	if r.f == nil {
		return r.readAt(r.file, p)
	}
	for {
		avail, wake, ferr := r.f.state()
		if r.off < avail {
			if rem := avail - r.off; int64(len(p)) > rem {
				p = p[:rem]
			}
			return r.readAt(r.f.file, p)
		}
		if ferr != nil {
			r.err = ferr
			return 0, ferr
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			r.err = r.ctx.Err()
			return 0, r.err
		}
	}
}

// readAt reads bytes the reader knows are there.
func (r *Reader) readAt(f *os.File, p []byte) (int, error) {
	n, err := f.ReadAt(p, r.off)
	r.off += int64(n)
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF // the file is shorter than the cache knows it
	}
	r.err = err
	return n, err
}

// Seek sets the offset of the next Read.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.info.Size
	default:
		return r.off, errors.New("contentcache: bad whence")
	}
	if offset < 0 {
		return r.off, errSeek
	}
	r.off = offset
	return offset, nil
}

// Close lets go of the file.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.f != nil {
		r.f.release()
		return nil
	}
	err := r.file.Close()
	r.c.unpin(r.e)
	return err
}

// Ready waits until the reader has a byte to read, the file is complete, or
// its fill failed (then it returns the fill's error), so a caller can still
// answer an error status before it commits to a response.
func (r *Reader) Ready() error {
	if r.f == nil {
		return nil
	}
	for {
		avail, wake, ferr := r.f.state()
		if avail > 0 || avail == r.info.Size {
			return nil
		}
		if ferr != nil {
			return ferr
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
}
