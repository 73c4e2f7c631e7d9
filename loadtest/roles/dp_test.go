package roles

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/contentmanifest"
	"github.com/cmg-gateway/cmg/sitetoken"
)

func dpConfig() Config {
	cfg := DefaultConfig()
	cfg.DP = DPConfig{Packages: []PackageConfig{
		{ID: "PKG1", Version: "2", Files: []DPFileConfig{
			{Name: "setup.exe", Size: 100_000},
			{Name: "x64/data (1).cab", Size: 3},
			{Name: "empty", Size: 0},
			{Name: "lie.bin", Size: 10, PublishSHA256: strings.Repeat("ab", 32)},
		}},
	}}
	return cfg
}

func TestDistributionPoint(t *testing.T) {
	s, base := startServer(t, dpConfig())
	c := newClient(t)
	want := func(name string, size int64) []byte {
		b, _ := io.ReadAll(ContentReader(DefaultConfig().Seed, "PKG1", "2", name, size))
		return b
	}

	resp, body := do(t, c, http.MethodGet, base+"/dp/"+contentmanifest.ManifestPath("PKG1", "2"), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: got %d, want 200", resp.StatusCode)
	}
	m, err := contentmanifest.Parse(body)
	if err != nil {
		t.Fatalf("the manifest does not parse: %v\n%s", err, body)
	}
	for _, tc := range []struct {
		name string
		size int64
		lies bool
	}{{"setup.exe", 100_000, false}, {"x64/data (1).cab", 3, false}, {"empty", 0, false}, {"lie.bin", 10, true}} {
		f, ok := m.Lookup(tc.name)
		if !ok {
			t.Errorf("manifest lacks %q", tc.name)
			continue
		}
		data := want(tc.name, tc.size)
		if got := f.SHA256 == sha(data); got == tc.lies || f.Size != tc.size {
			t.Errorf("%s: manifest says %d bytes, sha256 %s; the file has %d bytes, sha256 %s (published differently: want %v)",
				tc.name, f.Size, f.SHA256, len(data), sha(data), tc.lies)
		}
		resp, got := do(t, c, http.MethodGet, base+"/dp/"+contentmanifest.FilePath("PKG1", "2", tc.name), nil, nil)
		if resp.StatusCode != http.StatusOK || string(got) != string(data) {
			t.Errorf("GET %s: %d, %d bytes; want 200 and its %d bytes", tc.name, resp.StatusCode, len(got), len(data))
		}
		if et := resp.Header.Get("ETag"); et != `"`+sha(data)+`"` {
			t.Errorf("GET %s: ETag %s, want the quoted sha256 of the bytes", tc.name, et)
		}
	}

	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		status     int
		body       string
	}{
		{"range", "PKG1/2/setup.exe", map[string]string{"Range": "bytes=1000-1999"}, http.StatusPartialContent, string(want("setup.exe", 100_000)[1000:2000])},
		{"open range", "PKG1/2/setup.exe", map[string]string{"Range": "bytes=99990-"}, http.StatusPartialContent, string(want("setup.exe", 100_000)[99990:])},
		{"unknown version", "PKG1/3/setup.exe", nil, http.StatusNotFound, ""},
		{"unknown file", "PKG1/2/other.exe", nil, http.StatusNotFound, ""},
		{"unknown manifest", "PKG9/1/.manifest.json", nil, http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, got := do(t, c, http.MethodGet, base+"/dp/"+tc.path, nil, tc.hdr)
			if resp.StatusCode != tc.status || (tc.body != "" && string(got) != tc.body) {
				t.Errorf("got %d with %d bytes, want %d with %d", resp.StatusCode, len(got), tc.status, len(tc.body))
			}
		})
	}
	if resp, _ := do(t, c, http.MethodPost, base+"/dp/PKG1/2/setup.exe", nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want 405", resp.StatusCode)
	}
	st := s.Stats()
	if st.Kinds[kindDPManifest] != 1 || st.Roles[RoleDP].Requests == 0 || st.Roles[RoleDP].BodyBytesSent == 0 {
		t.Errorf("stats: %d manifests, DP role %+v; want 1 manifest and DP traffic", st.Kinds[kindDPManifest], st.Roles[RoleDP])
	}
}

func TestContentTokens(t *testing.T) {
	key, err := sitetoken.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := sitetoken.NewIssuer(key, "", "site1")
	if err != nil {
		t.Fatal(err)
	}
	_, base := startServer(t, dpConfig(), WithContentTokens(iss))
	_, plain := startServer(t, dpConfig())
	c := newClient(t)
	resp, body := do(t, c, http.MethodGet, base+"/mp/cmg-content-token?Package=PKG1", nil, map[string]string{"Cmg-Device-Id": "dev-42"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", resp.StatusCode, body)
	}
	var reply ContentTokenReply
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	v, err := sitetoken.NewVerifier([]sitetoken.Key{{ID: iss.KeyID(), Site: "site1", Public: &key.PublicKey}}, sitetoken.VerifyOptions{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(reply.Token, sitetoken.Content)
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if claims.Package != "PKG1" || claims.Subject != "dev-42" || claims.Expires.Sub(claims.IssuedAt) != sitetoken.DefaultContentTTL {
		t.Errorf("claims %+v, want pkg PKG1, sub dev-42, 24 h", claims)
	}
	if reply.Version != "2" || len(reply.Files) != 4 || reply.Files[0].Path != "/cmg/v1/content/PKG1/2/empty" || reply.ExpiresIn != 86400 {
		t.Errorf("reply %+v", reply)
	}
	for _, tc := range []struct{ base, q string }{{base, "package=NOPE"}, {base, "package=PKG1&version=9"}, {plain, "package=PKG1"}} {
		if resp, _ := do(t, c, http.MethodGet, tc.base+"/mp/cmg-content-token?"+tc.q, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: got %d, want 404", tc.q, resp.StatusCode)
		}
	}
}

func TestDPConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		dp   DPConfig
		want string
	}{
		{"default", DefaultDP(), ""},
		{"bad id", DPConfig{Packages: []PackageConfig{{ID: "../x", Version: "1"}}}, "packages[0].id"},
		{"twice", DPConfig{Packages: []PackageConfig{{ID: "A", Version: "1"}, {ID: "A", Version: "1"}}}, "listed twice"},
		{"bad file", DPConfig{Packages: []PackageConfig{{ID: "A", Version: "1", Files: []DPFileConfig{{Name: ".hidden"}}}}}, "files[0].name"},
		{"bad hash", DPConfig{Packages: []PackageConfig{{ID: "A", Version: "1", Files: []DPFileConfig{{Name: "a", PublishSHA256: "xyz"}}}}}, "publish_sha256"},
		{"negative rate", DPConfig{RateBytesPerSecond: -1}, "rate_bytes_per_second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p configfile.Problems
			tc.dp.validate(&p)
			err := p.Err()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}
