package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium (scripts/install-test-deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/install-test-deps (apt-get install chromium)")
	return ""
}

var seriesPath = regexp.MustCompile(`<path [^>]*class="series"[^>]*>`)

// TestHTMLPlotsDrawnInChromium opens the HTML report in a real headless
// browser and checks, in the DOM after its script ran, that both plots hold
// series paths drawn through many points, with no external resource asked for.
func TestHTMLPlotsDrawnInChromium(t *testing.T) {
	bin := chromium(t)
	r := sampleReport(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, banned := range []string{"http://", "https://", "src=", "<link"} {
		if i := strings.Index(html, banned); i >= 0 && !strings.Contains(html[max(0, i-40):i+40], "www.w3.org/2000/svg") {
			t.Errorf("the page refers outside itself (%q at %q)", banned, html[max(0, i-40):min(len(html), i+40)])
		}
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--virtual-time-budget=5000", "--dump-dom", "file://"+page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	dom := out.String()
	if !strings.Contains(dom, `data-plots="drawn"`) {
		t.Fatalf("the page's script did not finish drawing; DOM:\n%.2000s", dom)
	}
	for _, id := range []string{"latency", "throughput"} {
		start := strings.Index(dom, `<svg id="`+id+`"`)
		end := strings.Index(dom[max(start, 0):], "</svg>")
		if start < 0 || end < 0 {
			t.Errorf("plot %s: no svg in the DOM", id)
			continue
		}
		svg := dom[start : start+end]
		paths := seriesPath.FindAllString(svg, -1)
		if len(paths) < 2 {
			t.Errorf("plot %s: got %d series, want at least 2", id, len(paths))
		}
		for _, p := range paths {
			n := regexp.MustCompile(`data-points="(\d+)"`).FindStringSubmatch(p)
			pts, _ := strconv.Atoi(n[1])
			d := regexp.MustCompile(`d="([^"]*)"`).FindStringSubmatch(p)
			if pts < 10 || d == nil || strings.Count(d[1], "L") < pts-1 {
				t.Errorf("plot %s: series %.120s has %d points, want a line through at least 10", id, p, pts)
			}
		}
	}
}
