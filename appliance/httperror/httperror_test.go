package httperror

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	want := map[Reason]int{
		BadRequest: 400, MethodNotAllowed: 405, ClientCertificateRequired: 403, ClientCertificateRevoked: 403,
		InvalidToken: 401, PolicyDenied: 403, RouteNotFound: 404, RequestTooLarge: 413, RateLimited: 429,
		ConnectorUnavailable: 503, BackendUnavailable: 502, BackendTimeout: 504, EgressBudgetExceeded: 503,
		Overloaded: 503, Draining: 503, ClientClosed: 499,
	}
	if len(want) != len(Reasons) {
		t.Fatalf("the table covers %d reasons, Reasons has %d", len(want), len(Reasons))
	}
	for _, r := range Reasons {
		if got := r.Status(); got != want[r] {
			t.Errorf("%s.Status() = %d, want %d", r, got, want[r])
		}
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, "abc123", &Error{Reason: RateLimited, Detail: `slow "down" <now>`, RetryAfter: 1500 * time.Millisecond})
	if w.Code != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429", w.Code)
	}
	if got := w.Header().Get(Header); got != "RateLimited" {
		t.Errorf("CMG-Error %q, want RateLimited", got)
	}
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (rounded up)", got)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body.String(), err)
	}
	if body["error"] != "RateLimited" || body["detail"] != `slow "down" <now>` || body["request_id"] != "abc123" {
		t.Errorf("body %v", body)
	}
}

func TestClientClosedWritesNothing(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, "x", New(ClientClosed, ""))
	if w.Body.Len() != 0 || w.Header().Get(Header) != "" {
		t.Errorf("ClientClosed wrote %q", w.Body.String())
	}
}

func TestReasonOf(t *testing.T) {
	err := fmtWrap(Wrap(BackendTimeout, "slow", errors.New("deadline")))
	if r, ok := ReasonOf(err); !ok || r != BackendTimeout {
		t.Errorf("ReasonOf = %v, %v; want BackendTimeout", r, ok)
	}
	if e := As(errors.New("plain"), BackendUnavailable); e.Reason != BackendUnavailable {
		t.Errorf("As gave %v, want the fallback", e.Reason)
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func FuzzAppendJSON(f *testing.F) {
	f.Add("detail", "id")
	f.Add("\x00\u2028<script>\"\\", "\xff\xfe")
	f.Fuzz(func(t *testing.T, detail, id string) {
		b := AppendJSON(nil, BadRequest, detail, id)
		var v map[string]string
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		if v["error"] != "BadRequest" {
			t.Fatalf("error field %q", v["error"])
		}
	})
}
