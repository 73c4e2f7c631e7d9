package bench

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSmoke runs the harness in its smoke mode (a couple of seconds per load,
// no thresholds) so that the script, its tools and both chains keep working:
// every load must have run against both chains and moved something. The
// numbers of a smoke run mean nothing; loadtest/bench/run without -smoke
// measures.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the harness runs for about a minute")
	}
	for _, tool := range []string{"wrk", "curl", "jq", "taskset", "cc", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run scripts/install-test-deps", tool)
		}
	}
	out := filepath.Join(t.TempDir(), "smoke.md")
	cmd := exec.Command("./run", "-smoke", "-out", out)
	cmd.Env = os.Environ()
	if b := os.Getenv("CMG_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "CMG_BIN="+abs)
	}
	if bin, err := filepath.Abs("../../bin"); err == nil {
		cmd.Env = append(cmd.Env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run -smoke: %v\n%s", err, log)
	}
	f, err := os.Open(filepath.Join(filepath.Dir(out), "smoke.jsonl"))
	if err != nil {
		t.Fatalf("no results: %v\n%s", err, log)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Load, Chain string
			Count       float64
			CPU         float64 `json:"cpu_s"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("result line %q: %v", sc.Text(), err)
		}
		if r.Count <= 0 {
			t.Errorf("%s on %s: count %v, want more than 0", r.Load, r.Chain, r.Count)
		}
		seen[r.Load+"/"+r.Chain] = true
	}
	for _, load := range []string{"get4k", "upload64k", "handshake", "handshake_fwd", "download", "latency"} {
		for _, chain := range []string{"floor", "cmg"} {
			if !seen[load+"/"+chain] {
				t.Errorf("no result for %s on %s\n%s", load, chain, log)
			}
		}
	}
}
