package policies

import (
	"io"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

// CheckContentLength refuses a request whose declared body (n bytes; -1 when
// unknown) is over the decision's body limit, before any of it is read.
func (d *Decision) CheckContentLength(n int64) error {
	if d.BodyBytes > 0 && n > d.BodyBytes {
		return d.tooLarge()
	}
	return nil
}

func (d *Decision) tooLarge() *httperror.Error {
	return httperror.New(httperror.RequestTooLarge, "the request body is over the "+FormatSize(d.BodyBytes)+" limit of policy rule \""+d.Rule+"\"")
}

// LimitBody returns body limited to the decision's body limit (body itself when
// there is none): reading past the limit fails with a RequestTooLarge
// *httperror.Error, for bodies sent without a length or longer than declared.
func (d *Decision) LimitBody(body io.ReadCloser) io.ReadCloser {
	if d.BodyBytes <= 0 || body == nil {
		return body
	}
	return &limitedBody{rc: body, left: d.BodyBytes, err: d.tooLarge()}
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64 // bytes still allowed
	err  *httperror.Error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.err
	}
	// Read one byte more than allowed, to tell "exactly at the limit" from "over".
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), b.err
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
