package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/contentcache"
	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/tunnel"
)

func TestNotModified(t *testing.T) {
	const etag = `"abc"`
	for _, tc := range []struct {
		inm  string
		want bool
	}{
		{"", false},
		{`"abc"`, true},
		{`W/"abc"`, true},
		{`"x", "abc"`, true},
		{`*`, true},
		{`"abcd"`, false},
		{`abc`, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.inm != "" {
			r.Header.Set("If-None-Match", tc.inm)
		}
		if got := notModified(r, etag); got != tc.want {
			t.Errorf("If-None-Match %q: got %v, want %v", tc.inm, got, tc.want)
		}
	}
}

func TestRangeStart(t *testing.T) {
	for _, tc := range []struct {
		cr   string
		want int64
	}{
		{"bytes 100-199/1000", 100},
		{"bytes 0-0/1", 0},
		{"bytes */1000", -1},
		{"items 1-2/3", -1},
		{"", -1},
		{"bytes x-1/2", -1},
	} {
		if got := rangeStart(tc.cr); got != tc.want {
			t.Errorf("rangeStart(%q) = %d, want %d", tc.cr, got, tc.want)
		}
	}
}

func FuzzRangeStart(f *testing.F) {
	f.Add("bytes 100-199/1000")
	f.Add("bytes */5")
	f.Fuzz(func(t *testing.T, cr string) {
		if got := rangeStart(cr); got < -1 {
			t.Errorf("rangeStart(%q) = %d", cr, got)
		}
	})
}

func TestVerifier(t *testing.T) {
	data := []byte("0123456789")
	info := contentcache.Info{Size: int64(len(data)), SHA256: sha256.Sum256(data)}
	for _, tc := range []struct {
		name   string
		chunks []string
		want   []bool
	}{
		{"right", []string{"0123", "456", "789"}, []bool{true, true, true}},
		{"wrong last chunk", []string{"0123", "456", "78X"}, []bool{true, true, false}},
		{"too long", []string{"0123456789", "0"}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(info)
			for i, c := range tc.chunks {
				if got := v.add([]byte(c)); got != tc.want[i] {
					t.Errorf("chunk %d: got %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestManifestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	mc := newManifestCache(time.Minute, clock)
	var loads atomic.Int32
	gate := make(chan struct{})
	man := &contentmanifest.Manifest{Package: "P", Version: "1"}
	load := func() (*contentmanifest.Manifest, error) {
		loads.Add(1)
		<-gate
		return man, nil
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m, _, err := mc.get(ctx, "k", load); m != man || err != nil {
				t.Errorf("got %v %v", m, err)
			}
		}()
	}
	time.Sleep(10 * time.Millisecond) // let the goroutines pile up on the one load
	close(gate)
	wg.Wait()
	if got := loads.Load(); got != 1 {
		t.Errorf("%d loads for 10 concurrent requests, want 1", got)
	}
	advance(59 * time.Second)
	_, _, _ = mc.get(ctx, "k", load)
	if got := loads.Load(); got != 1 {
		t.Errorf("reloaded within the TTL (%d loads)", got)
	}
	advance(2 * time.Second)
	_, _, _ = mc.get(ctx, "k", load)
	if got := loads.Load(); got != 2 {
		t.Errorf("%d loads after the TTL, want 2", got)
	}

	// A missing version is remembered briefly; a transient failure is not.
	var missing, transient atomic.Int32
	for i := 0; i < 3; i++ {
		_, _, err := mc.get(ctx, "missing", func() (*contentmanifest.Manifest, error) { missing.Add(1); return nil, errNoVersion })
		if !errors.Is(err, errNoVersion) {
			t.Errorf("got %v, want errNoVersion", err)
		}
		_, _, _ = mc.get(ctx, "flaky", func() (*contentmanifest.Manifest, error) { transient.Add(1); return nil, errors.New("tunnel broke") })
	}
	if missing.Load() != 1 || transient.Load() != 3 {
		t.Errorf("loads: missing %d (want 1), transient %d (want 3)", missing.Load(), transient.Load())
	}
	advance(missingManifestTTL)
	_, _, _ = mc.get(ctx, "missing", func() (*contentmanifest.Manifest, error) { missing.Add(1); return nil, errNoVersion })
	if missing.Load() != 2 {
		t.Errorf("a missing version was remembered past %v", missingManifestTTL)
	}
}

func TestContentConfigValidate(t *testing.T) {
	cfg := DefaultContentConfig()
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if !cfg.ServeContent || cfg.Cache.Dir != "" {
		t.Errorf("defaults %+v: want serving on, no cache directory", cfg)
	}
	cfg.ManifestTTL = -1
	cfg.Cache.MaxBytes = 10
	if err := cfg.Validate(); err == nil {
		t.Error("a negative TTL and a 10-byte cache were accepted")
	}
}

func TestIsContentPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/cmg/v1/content/P/1/f": true,
		"/cmg/v1/content/":      true,
		"/cmg/v1/content":       false,
		"/CMG/v1/content/P/1/f": false,
		"/cmg/v1/notifications": false,
	} {
		if got := isContentPath(p); got != want {
			t.Errorf("isContentPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestDPRolesBySiteCodeOrName(t *testing.T) {
	sites := []SiteConfig{
		{Name: "site1", Code: "PS1", Roles: []RoleConfig{
			{ID: "3", Kind: tunnel.DistributionPoint}, {ID: "1", Kind: tunnel.ManagementPoint}, {ID: "2", Kind: tunnel.DistributionPoint}}},
		{Name: "site2", Roles: []RoleConfig{{ID: "4", Kind: tunnel.DistributionPoint}}},
		{Name: "site3", Roles: []RoleConfig{{ID: "5", Kind: tunnel.ManagementPoint}}},
	}
	g := &Gateway{}
	g.allow.Store(newAllowList(sites))
	cs := &contentServer{g: g}
	for _, tc := range []struct {
		site string
		want []string
	}{
		{"PS1", []string{"2", "3"}},
		{"site1", nil}, // the site has a code: tokens carry it
		{"site2", []string{"4"}},
		{"site3", nil},
		{"nowhere", nil},
	} {
		var got []string
		for _, r := range cs.dpRoles(tc.site) {
			got = append(got, r.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("dpRoles(%q) = %v, want %v", tc.site, got, tc.want)
		}
	}
	// A reload that moves a role is seen at once.
	sites[1].Roles = append(sites[1].Roles, RoleConfig{ID: "6", Kind: tunnel.DistributionPoint})
	g.allow.Store(newAllowList(sites))
	if got := len(cs.dpRoles("site2")); got != 2 {
		t.Errorf("after the reload site2 has %d DPs, want 2", got)
	}
}
