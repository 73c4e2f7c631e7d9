package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestRunRefreshesAndStops checks that Run fetches the JWKS as soon as it
// starts (so the first device does not wait for the issuer) and returns nil,
// leaving no goroutine behind, once its context is cancelled.
func TestRunRefreshesAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	k1 := namedKey{"k1", rsaKey(t, 0)}
	fetched := make(chan struct{}, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(jwksOf(k1))
		select {
		case fetched <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	a, err := New(oidcConfig(srv.URL+"/keys"), &Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-fetched:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not fetch the JWKS")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("got %v from Run, want nil", err)
	}
}

func TestRunWithNothingToRefresh(t *testing.T) {
	a, err := New(DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}
