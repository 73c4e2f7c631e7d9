package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// fileStamp is what tells that a watched file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, max)
}

func readAtMost(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

// validators are the HTTP cache validators of a fetched document, sent back so
// an unchanged CRL or JWKS costs a 304 instead of the whole body.
type validators struct {
	etag, lastModified string
}

// errNotModified is fetch's answer to a 304.
var errNotModified = errors.New("not modified")

// fetch GETs url within timeout, reading at most max bytes of a 200 answer. It
// returns errNotModified when the server says the copy matching v is current.
func fetch(ctx context.Context, client *http.Client, url string, timeout time.Duration, max int64, v validators) ([]byte, validators, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, v, err
	}
	if v.etag != "" {
		req.Header.Set("If-None-Match", v.etag)
	}
	if v.lastModified != "" {
		req.Header.Set("If-Modified-Since", v.lastModified)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, v, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, v, errNotModified
	default:
		return nil, v, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.ContentLength > max {
		return nil, v, fmt.Errorf("GET %s: %d bytes, larger than %d", url, resp.ContentLength, max)
	}
	data, err := readAtMost(resp.Body, max)
	if err != nil {
		return nil, v, fmt.Errorf("GET %s: %w", url, err)
	}
	return data, validators{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, nil
}
