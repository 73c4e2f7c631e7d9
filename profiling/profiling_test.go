package profiling

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"default is off and valid", func(*Config) {}, nil},
		{"on", func(c *Config) { c.ServerURL = "http://127.0.0.1:4040" }, nil},
		{"not a URL", func(c *Config) { c.ServerURL = "pyroscope:4040" }, []string{"server_url"}},
		{"braces in the name", func(c *Config) { c.ApplicationName = "cmg{x=y}" }, []string{"application_name"}},
		{"too frequent", func(c *Config) { c.UploadInterval = 100 * time.Millisecond }, []string{"upload_interval"}},
		{"user without password", func(c *Config) { c.BasicAuthUser = "cmg" }, []string{"basic_auth_user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			var got []string
			if ps, ok := c.Validate().(*configfile.Problems); ok {
				for _, p := range ps.List {
					got = append(got, p.Path)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got problems %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRunOffReturnsAtOnce(t *testing.T) {
	if err := Run(context.Background(), DefaultConfig(), Tags{"0", "gateway"}, nil); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

// TestPushReachesAnIngestEndpoint runs the real pyroscope-go push against an
// ingest endpoint made here (no Pyroscope server can be installed on this
// machine): each push is a multipart form whose "profile" part is decoded as a
// pprof profile. The tags must be in the pushed name, and the CPU samples of a
// goroutine labelled with Labels must carry the labels.
func TestPushReachesAnIngestEndpoint(t *testing.T) {
	ing := newIngest(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ServerURL = ing.srv.URL
	cfg.UploadInterval = time.Second
	cfg.BasicAuthUser, cfg.BasicAuthPasswordFile = "cmg", pwFile
	tags := Tags{Instance: "3", Role: "gateway"}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, tags, nil) }()

	// Work in a labelled goroutine until the profiles of it arrive.
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		Labels(context.Background(), tags)
		deadline := time.Now().Add(20 * time.Second)
		sum := sha256.Sum256(nil)
		for time.Now().Before(deadline) && !ing.sawLabelledCPU(tags) {
			for i := 0; i < 20000; i++ {
				sum = sha256.Sum256(sum[:])
			}
		}
	}()
	<-workDone
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	ing.mu.Lock()
	defer ing.mu.Unlock()
	if len(ing.pushes) == 0 {
		t.Fatal("no push arrived")
	}
	for _, p := range ing.pushes {
		if p.err != "" {
			t.Errorf("push %s: %s", p.name, p.err)
			continue
		}
		for _, want := range []string{"instance=3", "role=gateway"} {
			if !strings.Contains(p.name, want) {
				t.Errorf("pushed name %q lacks the tag %s", p.name, want)
			}
		}
		if !strings.HasPrefix(p.name, "cmg{") {
			t.Errorf("pushed name %q: want application cmg", p.name)
		}
		if p.user != "cmg" || p.password != "s3cret" {
			t.Errorf("basic auth: got %q/%q, want cmg/s3cret", p.user, p.password)
		}
	}
	for _, p := range ing.pushes {
		t.Logf("push %s", p.name)
	}
	if !ing.labelled {
		t.Errorf("no pushed CPU profile has a sample labelled instance=3 role=gateway (pushes: %d)", len(ing.pushes))
	}
	if !ing.types["cpu"] {
		t.Errorf("no CPU profile pushed; got sample types %v", ing.types)
	}
}

type push struct {
	name, user, password, err string
}

type ingest struct {
	srv      *httptest.Server
	mu       sync.Mutex
	pushes   []push
	types    map[string]bool
	labelled bool
}

func newIngest(t *testing.T) *ingest {
	ing := &ingest{types: map[string]bool{}}
	ing.srv = httptest.NewServer(http.HandlerFunc(ing.serve))
	t.Cleanup(ing.srv.Close)
	return ing
}

func (ing *ingest) serve(w http.ResponseWriter, r *http.Request) {
	p := push{name: r.URL.Query().Get("name")}
	p.user, p.password, _ = r.BasicAuth()
	prof, err := decode(r)
	if r.URL.Path != "/ingest" {
		err = &pathError{r.URL.Path}
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if err != nil {
		p.err = err.Error()
	} else {
		for _, st := range prof.SampleType {
			ing.types[st.Type] = true
		}
		if isCPU(prof) {
			for _, s := range prof.Sample {
				if has(s.Label["instance"], "3") && has(s.Label["role"], "gateway") {
					ing.labelled = true
				}
			}
		}
	}
	ing.pushes = append(ing.pushes, p)
}

func (ing *ingest) sawLabelledCPU(Tags) bool {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	return ing.labelled
}

func decode(r *http.Request) (*profile.Profile, error) {
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

func isCPU(p *profile.Profile) bool {
	for _, st := range p.SampleType {
		if st.Type == "cpu" {
			return true
		}
	}
	return false
}

func has(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

type pathError struct{ path string }

func (e *pathError) Error() string { return "pushed to " + e.path + ", want /ingest" }
