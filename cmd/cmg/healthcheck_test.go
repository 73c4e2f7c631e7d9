package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthcheckURLFromEnvironment(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer ok.Close()
	tests := []struct {
		name string
		env  string
		args []string
		want int
	}{
		{"env names a healthy admin listener", ok.URL + "/healthz", nil, 0},
		{"env names a path that is not 200", ok.URL + "/nothere", nil, 1},
		{"flag wins over env", ok.URL + "/nothere", []string{"-url", ok.URL + "/healthz"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CMG_HEALTHCHECK_URL", tt.env)
			var out, errb bytes.Buffer
			if got := runHealthcheck(context.Background(), tt.args, &out, &errb); got != tt.want {
				t.Errorf("got exit %d (%s), want %d", got, errb.String(), tt.want)
			}
		})
	}
}
