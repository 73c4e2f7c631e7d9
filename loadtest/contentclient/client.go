// Package contentclient downloads content from the gateway's content endpoint
// (/cmg/v1/content/...) the way a background transfer service (BITS) does: it
// learns the file's size and entity tag with a HEAD, then asks for it in ranges
// (1 MiB by default), each with If-Range so it never mixes two versions of a
// file, writing the bytes in order as they arrive. A request that fails or
// breaks off mid-body is retried from the exact byte reached, after a pause;
// a Download cut short (its context ended, the process was stopped) resumes
// from the job's state. The load tester's devices and the end-to-end tests
// use it.
package contentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client holds the HTTP client and the transfer policy.
type Client struct {
	// HTTP sends the requests; it holds the TLS configuration.
	HTTP *http.Client
	// ChunkSize is the bytes one request asks for. Default 1 MiB.
	ChunkSize int64
	// MaxFailures is how many failures in a row, without a byte of progress
	// between them, end a download. Default 8.
	MaxFailures int
	// RetryDelay is the pause after the first failure, doubling up to
	// MaxRetryDelay; a Retry-After header is honoured. Defaults 100ms and 5s.
	RetryDelay, MaxRetryDelay time.Duration
}

// Job is one file's download and its progress; pass the same Job to
// Download again to resume it.
type Job struct {
	// URL is the file's URL on the gateway (contentmanifest.DeviceURL).
	URL string
	// Token is the content token, sent as a bearer token.
	Token string
	// Size and ETag are learnt by the first request and kept, so that a
	// resumed job only takes bytes of the same file.
	Size int64
	ETag string
	// Done is the bytes received and written so far.
	Done int64
	// Requests, Failures (requests that failed or broke off) and Received
	// (body bytes, including any received again) count across resumptions.
	Requests, Failures int
	Received           int64
	known              bool
}

// StatusError is a refusal that retrying will not change: a 4xx other than
// 408 and 429.
type StatusError struct {
	Status int
	// Reason is the gateway's CMG-Error header.
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("contentclient: %d %s", e.Status, e.Reason)
}

// ErrChanged is returned when the file changed on the server since the job
// started (its ETag is not the job's): start a new job.
var ErrChanged = errors.New("contentclient: the file changed since the download started")

// errRetry marks a failure worth another try.
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// Download fetches what remains of the job and writes it to w in order, with
// no gap and no byte twice (so w can be a hash). It returns nil when the
// whole file is there, the context's error when it ends (the job can be
// resumed), a *StatusError, ErrChanged, or the last error after MaxFailures
// failures without progress.
func (c *Client) Download(ctx context.Context, j *Job, w io.Writer) error {
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = 1 << 20
	}
	maxFailures := c.MaxFailures
	if maxFailures <= 0 {
		maxFailures = 8
	}
	failures := 0
	for !j.known || j.Done < j.Size {
		if err := ctx.Err(); err != nil {
			return err
		}
		before := j.Done
		var err error
		if !j.known {
			err = c.head(ctx, j)
		} else {
			err = c.getRange(ctx, j, w, chunk)
		}
		if err == nil {
			failures = 0
			continue
		}
		var re *retryable
		if !errors.As(err, &re) {
			return err
		}
		j.Failures++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if j.Done > before {
			failures = 0
		}
		failures++
		if failures >= maxFailures {
			return fmt.Errorf("contentclient: giving up after %d failures: %w", failures, re.err)
		}
		if err := sleep(ctx, c.delay(failures, re.after)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) delay(failures int, after time.Duration) time.Duration {
	base, maxD := c.RetryDelay, c.MaxRetryDelay
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxD <= 0 {
		maxD = 5 * time.Second
	}
	d := base << min(failures-1, 16)
	if d > maxD {
		d = maxD
	}
	return max(d, after)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) request(ctx context.Context, method string, j *Job) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, j.URL, nil)
	if err != nil {
		return nil, err
	}
	if j.Token != "" {
		req.Header.Set("Authorization", "Bearer "+j.Token)
	}
	j.Requests++
	return req, nil
}

// head learns the file's size and entity tag.
func (c *Client) head(ctx context.Context, j *Job) error {
	req, err := c.request(ctx, http.MethodHead, j)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return &retryable{err: err}
	}
	resp.Body.Close()
	if err := statusErr(resp); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
		return &retryable{err: fmt.Errorf("contentclient: HEAD answered %d with length %d", resp.StatusCode, resp.ContentLength)}
	}
	etag := resp.Header.Get("ETag")
	if j.ETag != "" && etag != j.ETag {
		return ErrChanged
	}
	j.Size, j.ETag, j.known = resp.ContentLength, etag, true
	return nil
}

// getRange asks for the next chunk and writes what arrives.
func (c *Client) getRange(ctx context.Context, j *Job, w io.Writer, chunk int64) error {
	req, err := c.request(ctx, http.MethodGet, j)
	if err != nil {
		return err
	}
	end := min(j.Done+chunk, j.Size) - 1
	req.Header.Set("Range", "bytes="+strconv.FormatInt(j.Done, 10)+"-"+strconv.FormatInt(end, 10))
	if j.ETag != "" {
		req.Header.Set("If-Range", j.ETag)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return &retryable{err: err}
	}
	defer resp.Body.Close()
	if err := statusErr(resp); err != nil {
		return err
	}
	skip := int64(0)
	want := end - j.Done + 1
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, _ := parseContentRange(resp.Header.Get("Content-Range")); start != j.Done {
			return &retryable{err: fmt.Errorf("contentclient: asked for byte %d, got a range from %d", j.Done, start)}
		}
	case http.StatusOK:
		// The server sent the whole file: the same one (skip what we have),
		// or another one.
		if resp.Header.Get("ETag") != j.ETag {
			return ErrChanged
		}
		skip, want = j.Done, j.Size-j.Done
	default:
		return &retryable{err: fmt.Errorf("contentclient: GET answered %d", resp.StatusCode)}
	}
	if skip > 0 {
		n, err := io.CopyN(io.Discard, resp.Body, skip)
		j.Received += n
		if err != nil {
			return &retryable{err: err}
		}
	}
	dst := &sink{w: w}
	n, err := io.Copy(dst, io.LimitReader(&counting{r: resp.Body, n: &j.Received}, want))
	j.Done += n
	if dst.err != nil {
		return fmt.Errorf("contentclient: write: %w", dst.err)
	}
	if err == nil && n < want {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return &retryable{err: fmt.Errorf("contentclient: body cut at byte %d: %w", j.Done, err)}
	}
	return nil
}

// sink tells the caller's write errors (final) from the network's (retried).
type sink struct {
	w   io.Writer
	err error
}

func (s *sink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

type counting struct {
	r io.Reader
	n *int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// statusErr sorts a status: nil for a success, retryable for 408, 429 and
// 5xx (with Retry-After), a StatusError for other refusals.
func statusErr(resp *http.Response) error {
	s := resp.StatusCode
	switch {
	case s < 400:
		return nil
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return &retryable{err: &StatusError{Status: s, Reason: resp.Header.Get("CMG-Error")}, after: time.Duration(after) * time.Second}
	}
	return &StatusError{Status: s, Reason: resp.Header.Get("CMG-Error")}
}

// parseContentRange reads "bytes a-b/n" and returns a and n (-1 when absent).
func parseContentRange(cr string) (start, size int64) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return -1, -1
	}
	rng, total, ok := strings.Cut(s, "/")
	a, _, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return -1, -1
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return -1, -1
	}
	size, err = strconv.ParseInt(total, 10, 64)
	if err != nil || size < 0 {
		size = -1
	}
	return start, size
}
