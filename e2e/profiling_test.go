package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
)

// TestGatewayPushesProfiles runs the built binary with a profiling section
// pointing at an ingest endpoint made here (no Pyroscope server exists on this
// machine): the pushes must arrive at /ingest, decode as pprof profiles, and be
// tagged with the instance and role.
func TestGatewayPushesProfiles(t *testing.T) {
	var mu sync.Mutex
	var names []string
	var decoded, cpu int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ingest" {
			http.NotFound(w, r)
			return
		}
		p, err := decodePush(r)
		mu.Lock()
		defer mu.Unlock()
		names = append(names, r.URL.Query().Get("name"))
		if err == nil {
			decoded++
			for _, st := range p.SampleType {
				if st.Type == "cpu" {
					cpu++
				}
			}
		}
	}))
	defer srv.Close()

	e := newProcEnv(t)
	g := e.m.Gateways[0]
	cfg := gateway.DefaultConfig()
	if err := configfile.Load(g.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Profiling.ServerURL = srv.URL
	cfg.Profiling.UploadInterval = time.Second
	data, err := configfile.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.Config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e.start("gateway-0", "gateway", "-config", g.Config)
	waitFor(t, "a CPU profile push", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return cpu > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if decoded != len(names) {
		t.Errorf("%d of %d pushes decoded as pprof profiles", decoded, len(names))
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "cmg{") || !strings.Contains(n, "instance=0") || !strings.Contains(n, "role=gateway") {
			t.Errorf("push name %q: want application cmg tagged instance=0 and role=gateway", n)
		}
	}
}

func decodePush(r *http.Request) (*profile.Profile, error) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		return nil, err
	}
	f, _, err := r.FormFile("profile")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return profile.ParseData(data)
}
