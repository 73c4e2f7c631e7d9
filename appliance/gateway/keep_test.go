package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/tunnel"
)

// TestKeptStreamsCarryMixedRequests sends requests of every shape from a few
// devices at once through one connector: each answer must be its own request's
// (the role echoes the query and the body's hash), and the tunnel must carry
// them on kept streams: a fresh stream only after an exchange the connector
// did not keep (a large answer, a chunked upload), or for more concurrency.
func TestKeptStreamsCarryMixedRequests(t *testing.T) {
	c := startChain(t)
	mp := "/CCM_Proxy_MutualAuth/" + c.manif.RoleIDs[string(tunnel.ManagementPoint)]
	const devices, perDevice = 8, 40
	type shape struct {
		name    string
		method  string
		path    string
		body    []byte
		chunked bool
		status  int
		kept    bool
	}
	body := bytes.Repeat([]byte("cmg "), 16<<10)
	shapes := []shape{
		{"GET", "GET", mp + "/cmg-echo", nil, false, 200, true},
		{"CCM_POST 64 KiB", "CCM_POST", mp + "/cmg-echo", body, false, 200, true},
		{"HEAD", "HEAD", mp + "/cmg-echo", nil, false, 200, true},
		{"role error", "GET", mp + "/cmg-echo?cmg-status=500", nil, false, 500, true},
		{"chunked upload", "CCM_POST", mp + "/cmg-echo", body[:1000], true, 200, false},
		{"large answer", "GET", mp + "/cmg-blob?size=300000", nil, false, 200, false},
	}
	var (
		wg      sync.WaitGroup
		notKept int
		errs    = make(chan error, devices*perDevice)
	)
	for d := range devices {
		for i := range perDevice {
			if !shapes[(d+i)%len(shapes)].kept {
				notKept++
			}
		}
	}
	for d := range devices {
		wg.Go(func() {
			for i := range perDevice {
				sh := shapes[(d+i)%len(shapes)]
				path := sh.path
				sep := "?"
				if strings.Contains(path, "?") {
					sep = "&"
				}
				q := fmt.Sprintf("dev=%d&i=%d", d, i)
				r := c.request(sh.method, path+sep+q, sh.body)
				if sh.chunked {
					r.ContentLength = -1
				}
				w := httptest.NewRecorder()
				start := time.Now()
				c.gw.ServeHTTP(w, r)
				if d := time.Since(start); d > time.Second {
					t.Logf("slow: %s %v", sh.name, d)
				}
				if err := checkAnswer(w, sh.method, path, sh.status, q, sh.body); err != nil {
					errs <- fmt.Errorf("device %d request %d (%s): %w", d, i, sh.name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := c.gw.Registry().Sessions()[0]
	if got, max := s.StreamsOpened(), int64(notKept+devices); got > max {
		t.Errorf("%d requests opened %d streams, want at most %d (one after each of the %d answers not kept, and one per device)",
			devices*perDevice, got, max, notKept)
	}
	if s.Kept() == 0 {
		t.Error("no stream kept after the last requests")
	}
}

// checkAnswer checks that an answer is the role's answer to this request.
func checkAnswer(w *httptest.ResponseRecorder, method, path string, status int, query string, body []byte) error {
	if w.Code != status {
		return fmt.Errorf("status %d, want %d: %s", w.Code, status, w.Body.Bytes())
	}
	if w.Header().Get(tunnel.HeaderStream) != "" {
		return fmt.Errorf("the device got the tunnel's %s header", tunnel.HeaderStream)
	}
	if method == http.MethodHead {
		if w.Body.Len() != 0 {
			return fmt.Errorf("HEAD answered with %d body bytes", w.Body.Len())
		}
		return nil
	}
	if status != http.StatusOK {
		return nil
	}
	if strings.HasSuffix(path, "size=300000") {
		if w.Body.Len() != 300000 {
			return fmt.Errorf("blob of %d bytes, want 300000", w.Body.Len())
		}
		return nil
	}
	var rep roles.EchoReply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		return fmt.Errorf("not the echo: %v: %.200s", err, w.Body.Bytes())
	}
	sum := sha256.Sum256(body)
	if !bytes.Contains([]byte(rep.RawQuery), []byte(query)) || rep.BodyLen != int64(len(body)) || rep.BodySHA256 != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("the answer is another request's: query %q body %d bytes, want %q and %d", rep.RawQuery, rep.BodyLen, query, len(body))
	}
	return nil
}
