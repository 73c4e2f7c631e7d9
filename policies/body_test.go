package policies

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/appliance/httperror"
)

func TestCheckContentLength(t *testing.T) {
	d := Decision{Rule: "r", Action: Allow, Limits: Limits{BodyBytes: 100}}
	tests := []struct {
		n       int64
		tooMuch bool
	}{{-1, false}, {0, false}, {100, false}, {101, true}}
	for _, tt := range tests {
		err := d.CheckContentLength(tt.n)
		if r, _ := httperror.ReasonOf(err); tt.tooMuch != (r == httperror.RequestTooLarge) {
			t.Errorf("CheckContentLength(%d) = %v, want RequestTooLarge %v", tt.n, err, tt.tooMuch)
		}
	}
	if err := (&Decision{}).CheckContentLength(1 << 40); err != nil {
		t.Errorf("no limit: got %v", err)
	}
}

func TestLimitBody(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		limit   int64
		want    string
		tooMuch bool
	}{
		{"under", "hello", 10, "hello", false},
		{"exactly at", "0123456789", 10, "0123456789", false},
		{"over", "0123456789X", 10, "0123456789", true},
		{"far over", strings.Repeat("x", 100000), 10, "xxxxxxxxxx", true},
		{"no limit", "anything at all", 0, "anything at all", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decision{Rule: "r", Action: Allow, Limits: Limits{BodyBytes: tt.limit}}
			rc := d.LimitBody(io.NopCloser(strings.NewReader(tt.body)))
			got, err := io.ReadAll(rc)
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			var he *httperror.Error
			if tt.tooMuch != (errors.As(err, &he) && he.Reason == httperror.RequestTooLarge) {
				t.Errorf("error %v, want RequestTooLarge %v", err, tt.tooMuch)
			}
			if tt.tooMuch {
				if _, err := rc.Read(make([]byte, 4)); err == nil {
					t.Error("a read after the limit succeeded")
				}
			}
			if err := rc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	d := Decision{Limits: Limits{BodyBytes: 5}}
	if d.LimitBody(nil) != nil {
		t.Error("a nil body did not stay nil")
	}
}
