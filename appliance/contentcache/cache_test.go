package contentcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cmg-gateway/cmg/configfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// content is n deterministic bytes.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func infoOf(b []byte) Info { return Info{Size: int64(len(b)), SHA256: sha256.Sum256(b)} }

// source serves a file to fills and records what was asked of it.
type source struct {
	data []byte
	mu   sync.Mutex
	offs []int64
	// breakAt, when > 0, cuts the first fetch after that many bytes.
	breakAt int64
	// fail makes every fetch fail.
	fail error
	// gate, when set, holds the last byte until it is closed.
	gate chan struct{}
}

func (s *source) fetch(_ context.Context, off int64) (io.ReadCloser, error) {
	s.mu.Lock()
	s.offs = append(s.offs, off)
	first := len(s.offs) == 1
	s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	rest := s.data[off:]
	if first && s.breakAt > 0 {
		return io.NopCloser(io.MultiReader(bytes.NewReader(rest[:s.breakAt-off]), errReader{errors.New("connection reset")})), nil
	}
	if s.gate != nil && len(rest) > 0 {
		return io.NopCloser(io.MultiReader(bytes.NewReader(rest[:len(rest)-1]), gated{s.gate, rest[len(rest)-1:]})), nil
	}
	return io.NopCloser(bytes.NewReader(rest)), nil
}

func (s *source) offsets() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.offs...)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type gated struct {
	gate chan struct{}
	last []byte
}

func (g gated) Read(p []byte) (int, error) {
	<-g.gate
	return copy(p, g.last), io.EOF
}

func openCache(t *testing.T, dir string, max int64) *Cache {
	t.Helper()
	c, err := Open(Config{Dir: dir, MaxBytes: configfile.Size(max)}, Options{RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func readAll(t *testing.T, r *Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func key(name string) Key { return Key{Site: "site1", Package: "PKG", Version: "1", File: name} }

func TestFillThenHit(t *testing.T) {
	c := openCache(t, t.TempDir(), 8<<20)
	data := content(1, 300_000)
	src := &source{data: data}
	ctx := context.Background()
	if r := c.Lookup(ctx, key("a")); r != nil {
		t.Fatal("got a reader for a file never fetched, want nil")
	}
	r, err := c.Fill(ctx, key("a"), infoOf(data), src.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Started() || r.Cached() {
		t.Errorf("first reader: started %v cached %v, want true false", r.Started(), r.Cached())
	}
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Fatalf("fill reader got %d bytes, want the %d of the file", len(got), len(data))
	}
	r.Close()
	waitFills(t, c)
	hit := c.Lookup(ctx, key("a"))
	if hit == nil || !hit.Cached() {
		t.Fatal("got no cached reader after the fill, want one")
	}
	if got := readAll(t, hit); !bytes.Equal(got, data) {
		t.Fatal("cached reader got other bytes")
	}
	// Seek and read a range, as http.ServeContent does.
	if _, err := hit.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 500)
	if _, err := io.ReadFull(hit, part); err != nil || !bytes.Equal(part, data[1000:1500]) {
		t.Fatalf("range read: %v, bytes equal %v", err, bytes.Equal(part, data[1000:1500]))
	}
	hit.Close()
	if got := src.offsets(); len(got) != 1 {
		t.Errorf("fetches: %v, want exactly one", got)
	}
	if st := c.Stats(); st.Files != 1 || st.Bytes != accountFor(int64(len(data))) {
		t.Errorf("stats %+v, want 1 file of %d counted bytes", st, accountFor(int64(len(data))))
	}
}

func waitFills(t *testing.T, c *Cache) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Fills > 0 {
		if time.Now().After(deadline) {
			t.Fatal("fill did not end")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentReadersShareOneFetch(t *testing.T) {
	c := openCache(t, t.TempDir(), 8<<20)
	data := content(2, 1<<20)
	gate := make(chan struct{})
	src := &source{data: data, gate: gate}
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	var started atomic.Int32
	results := make([][]byte, n)
	readers := make([]*Reader, n)
	for i := 0; i < n; i++ {
		r, err := c.Fill(ctx, key("shared"), infoOf(data), src.fetch)
		if err != nil {
			t.Fatal(err)
		}
		if r.Started() {
			started.Add(1)
		}
		readers[i] = r
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer readers[i].Close()
			results[i], _ = io.ReadAll(readers[i])
		}()
	}
	close(gate)
	wg.Wait()
	for i, b := range results {
		if !bytes.Equal(b, data) {
			t.Fatalf("reader %d got %d bytes, want the %d of the file", i, len(b), len(data))
		}
	}
	if got := started.Load(); got != 1 {
		t.Errorf("%d readers started a fetch, want 1", got)
	}
	if got := src.offsets(); len(got) != 1 {
		t.Errorf("fetches %v, want one", got)
	}
}

func TestLastByteHeldUntilVerified(t *testing.T) {
	for _, tc := range []struct {
		name    string
		publish func(data []byte) []byte
		wantErr error
	}{
		{"verified", func(d []byte) []byte { return d }, nil},
		{"hash mismatch", func(d []byte) []byte { b := bytes.Clone(d); b[len(b)-1] ^= 1; return b }, ErrHashMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openCache(t, dir, 8<<20)
			data := content(3, 100_000)
			gate := make(chan struct{})
			src := &source{data: tc.publish(data), gate: gate}
			r, err := c.Fill(context.Background(), key("x"), infoOf(data), src.fetch)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			head := make([]byte, len(data)-1)
			if _, err := io.ReadFull(r, head); err != nil {
				t.Fatalf("reading all but the last byte: %v", err)
			}
			// The last byte is there on the wire but not verified: it must wait.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			early := c.Lookup(ctx, key("x"))
			if early == nil || early.Cached() {
				t.Fatal("a second reader did not join the fill in progress")
			}
			if _, err := early.Seek(int64(len(data)-1), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if n, err := early.Read(make([]byte, 1)); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("read of the unverified last byte: %d bytes, %v; want 0 and the context's deadline", n, err)
			}
			early.Close()
			close(gate)
			last := make([]byte, 1)
			_, err = io.ReadFull(r, last)
			if tc.wantErr == nil {
				if err != nil || last[0] != data[len(data)-1] {
					t.Fatalf("last byte after verification: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !errors.Is(r.Err(), tc.wantErr) {
				t.Fatalf("last read error %v (Err %v), want %v", err, r.Err(), tc.wantErr)
			}
			waitFills(t, c)
			if got := c.Lookup(context.Background(), key("x")); got != nil {
				t.Error("a file that failed verification is in the cache")
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("files left after a failed fill: %v", names)
			}
		})
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.Name() != lockName {
			out = append(out, de.Name())
		}
	}
	return out
}

func TestFillFailures(t *testing.T) {
	data := content(4, 200_000)
	for _, tc := range []struct {
		name     string
		src      *source
		info     Info
		wantErr  error
		wantOffs int
	}{
		{"longer than published", &source{data: data}, Info{Size: 1000, SHA256: sha256.Sum256(data[:1000])}, ErrSizeMismatch, 1},
		{"shorter than published", &source{data: data[:1000]}, Info{Size: 2000}, io.ErrUnexpectedEOF, maxRetries + 1},
		{"site unreachable", &source{data: data, fail: errors.New("no connector")}, infoOf(data), nil, maxRetries + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openCache(t, dir, 8<<20)
			r, err := c.Fill(context.Background(), key("f"), tc.info, tc.src.fetch)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(r)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("read error %v, want %v", err, tc.wantErr)
			}
			if got := len(tc.src.offsets()); got != tc.wantOffs {
				t.Errorf("%d fetches, want %d", got, tc.wantOffs)
			}
			waitFills(t, c)
			if st := c.Stats(); st.Bytes == 0 {
				t.Errorf("the reservation was given back while a reader still holds the file")
			}
			r.Close()
			// The fill's goroutine drops its own reference just after it leaves
			// the index (Fills 0), so the space comes back a moment later.
			deadline := time.Now().Add(10 * time.Second)
			for st := c.Stats(); st.Bytes != 0 || st.Files != 0; st = c.Stats() {
				if time.Now().After(deadline) {
					t.Fatalf("after the failed fill: %+v, want nothing counted", st)
				}
				time.Sleep(time.Millisecond)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("files left: %v", names)
			}
		})
	}
}

func TestFillResumesWhereItBrokeOff(t *testing.T) {
	c := openCache(t, t.TempDir(), 8<<20)
	data := content(5, 500_000)
	src := &source{data: data, breakAt: 123_457}
	r, err := c.Fill(context.Background(), key("r"), infoOf(data), src.fetch)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Fatal("resumed fill gave other bytes")
	}
	if got := src.offsets(); len(got) != 2 || got[0] != 0 || got[1] != 123_457 {
		t.Errorf("fetch offsets %v, want [0 123457]", got)
	}
}

// diskUse is what the directory's files take on disk (allocated blocks) and
// their apparent sizes.
func diskUse(t *testing.T, dir string) (blocks, apparent int64) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		fi, err := os.Stat(filepath.Join(dir, de.Name()))
		if err != nil {
			continue
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			blocks += st.Blocks * 512
		}
	}
	return blocks, apparent
}

func TestLeastRecentlyUsedGoesFirst(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 20
	max := 3 * accountFor(size)
	c := openCache(t, dir, max)
	ctx := context.Background()
	files := map[string][]byte{}
	get := func(name string) {
		t.Helper()
		data, ok := files[name]
		if !ok {
			data = content(uint64(len(files)+10), size)
			files[name] = data
		}
		r := c.Lookup(ctx, key(name))
		if r == nil {
			var err error
			if r, err = c.Fill(ctx, key(name), infoOf(data), (&source{data: data}).fetch); err != nil {
				t.Fatal(err)
			}
		}
		if got := readAll(t, r); !bytes.Equal(got, data) {
			t.Fatalf("%s: wrong bytes", name)
		}
		r.Close()
		waitFills(t, c)
		if blocks, apparent := diskUse(t, dir); blocks > max || apparent > max {
			t.Fatalf("after %s: %d bytes allocated, %d apparent on disk, bound %d", name, blocks, apparent, max)
		}
	}
	get("a")
	get("b")
	get("c")
	get("a") // a is now the most recent; b the least
	get("d")
	for name, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		r := c.Lookup(ctx, key(name))
		if got := r != nil; got != want {
			t.Errorf("%s cached: %v, want %v", name, got, want)
		}
		if r != nil {
			r.Close()
		}
	}
	if st := c.Stats(); st.Evictions != 1 || st.Bytes > max {
		t.Errorf("stats %+v, want 1 eviction and at most %d bytes", st, max)
	}
}

func TestNoRoomWhileEveryFileIsRead(t *testing.T) {
	const size = 1 << 20
	c := openCache(t, t.TempDir(), 2*accountFor(size))
	ctx := context.Background()
	var open []*Reader
	for _, name := range []string{"a", "b"} {
		data := content(20, size)
		r, err := c.Fill(ctx, key(name), infoOf(data), (&source{data: data}).fetch)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, r)
	}
	data := content(21, size)
	if _, err := c.Fill(ctx, key("c"), infoOf(data), (&source{data: data}).fetch); !errors.Is(err, ErrNoRoom) {
		t.Errorf("fill while every file is read: %v, want ErrNoRoom", err)
	}
	big := content(22, int(2*accountFor(size)))
	if _, err := c.Fill(ctx, key("big"), infoOf(big), (&source{data: big}).fetch); !errors.Is(err, ErrTooLarge) {
		t.Errorf("fill of a file larger than the cache: %v, want ErrTooLarge", err)
	}
	for _, r := range open {
		_, _ = io.ReadAll(r)
		r.Close()
	}
	waitFills(t, c)
	r, err := c.Fill(ctx, key("c"), infoOf(data), (&source{data: data}).fetch)
	if err != nil {
		t.Fatalf("fill once the readers closed: %v", err)
	}
	r.Close()
}

func TestRestartKeepsFilesAndOrder(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 20
	c, err := Open(Config{Dir: dir, MaxBytes: 64 << 20}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	datas := map[string][]byte{}
	for i, name := range []string{"old", "mid", "new"} {
		data := content(uint64(30+i), size)
		datas[name] = data
		r, err := c.Fill(ctx, key(name), infoOf(data), (&source{data: data}).fetch)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(r)
		r.Close()
		waitFills(t, c)
	}
	if _, err := Open(Config{Dir: dir, MaxBytes: 64 << 20}, Options{}); err == nil {
		t.Fatal("a second Open of a directory in use succeeded, want an error")
	}
	c.Close()
	// Ages as a previous run's touches left them; a crash's partial file; a
	// stranger's file.
	base := time.Now().Add(-time.Hour)
	for i, name := range []string{"old", "mid", "new"} {
		path := c.entryPath(key(name).id(), sha256.Sum256(datas[name]))
		if err := os.Chtimes(path, base.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	partial := filepath.Join(dir, key("crashed").id()+".12345.tmp")
	if err := os.WriteFile(partial, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(dir, "README")
	if err := os.WriteFile(stranger, []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Room for two files only: the oldest goes at start.
	c2, err := Open(Config{Dir: dir, MaxBytes: configfile.Size(2 * accountFor(size))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for name, want := range map[string]bool{"old": false, "mid": true, "new": true} {
		r := c2.Lookup(ctx, key(name))
		if got := r != nil; got != want {
			t.Errorf("%s cached after restart: %v, want %v", name, got, want)
			continue
		}
		if r != nil {
			if got := readAll(t, r); !bytes.Equal(got, datas[name]) {
				t.Errorf("%s: other bytes after restart", name)
			}
			r.Close()
		}
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the partial file is still there (%v)", err)
	}
	if _, err := os.Stat(stranger); err != nil {
		t.Errorf("a file that is not the cache's was touched: %v", err)
	}
}

func TestCloseEndsFills(t *testing.T) {
	c, err := Open(Config{Dir: t.TempDir(), MaxBytes: 8 << 20}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := content(40, 10_000)
	gate := make(chan struct{})
	defer close(gate)
	blocked := func(ctx context.Context, off int64) (io.ReadCloser, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-gate:
			return nil, errors.New("unreachable")
		}
	}
	r, err := c.Fill(context.Background(), key("c"), infoOf(data), blocked)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("reader of a fill cut by Close: %v, want ErrClosed", err)
	}
	if _, err := c.Fill(context.Background(), key("d"), infoOf(data), blocked); !errors.Is(err, ErrClosed) {
		t.Errorf("Fill after Close: %v, want ErrClosed", err)
	}
}

func TestEmptyFile(t *testing.T) {
	c := openCache(t, t.TempDir(), 8<<20)
	r, err := c.Fill(context.Background(), key("empty"), infoOf(nil), (&source{}).fetch)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 0 {
		t.Errorf("got %d bytes, want none", len(got))
	}
	r.Close()
	waitFills(t, c)
	if r := c.Lookup(context.Background(), key("empty")); r == nil || !r.Cached() {
		t.Error("empty file not cached")
	} else {
		r.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"tiny", Config{Dir: "/x", MaxBytes: 1000}, false},
		{"one MiB", Config{Dir: "/x", MaxBytes: MinBytes}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestEntryNames(t *testing.T) {
	id := key("a").id()
	sum := sha256.Sum256([]byte("x"))
	c := &Cache{dir: "/d"}
	name := filepath.Base(c.entryPath(id, sum))
	gotID, gotSum, ok := parseEntryName(name)
	if !ok || gotID != id || gotSum != sum {
		t.Errorf("parseEntryName(%q) = %q %x %v", name, gotID, gotSum, ok)
	}
	for _, bad := range []string{"", "README", id, id + "-", id + "-" + id[:63], id + "-" + id + "x", "G" + id[1:] + "-" + id} {
		if _, _, ok := parseEntryName(bad); ok {
			t.Errorf("parseEntryName(%q) accepted it", bad)
		}
	}
	if !isTemp(id+".123.tmp") || isTemp(id+"-x.tmp") || isTemp("x.tmp") {
		t.Error("isTemp misjudges")
	}
}

func FuzzParseEntryName(f *testing.F) {
	f.Add(key("a").id() + "-" + key("b").id())
	f.Add("README")
	f.Fuzz(func(t *testing.T, name string) {
		id, sum, ok := parseEntryName(name)
		if !ok {
			return
		}
		c := &Cache{dir: "/d"}
		if got := filepath.Base(c.entryPath(id, sum)); got != name {
			t.Errorf("round trip of %q gave %q", name, got)
		}
	})
}
