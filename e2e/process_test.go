package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/demo"
)

// cmgBinary is the built cmg binary the process tests run: $CMG_BIN when set
// (scripts/test builds it once), else built here into a temporary directory.
var cmgBinary string

func TestMain(m *testing.M) {
	if spec := os.Getenv(floodEnv); spec != "" {
		os.Exit(runFloodClient(spec)) // a helper process of TestConnectionFloodMemory
	}
	code := func() int {
		if b := os.Getenv("CMG_BIN"); b != "" {
			abs, err := filepath.Abs(b)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			cmgBinary = abs
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "cmg-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cmgBinary = filepath.Join(dir, "cmg")
		build := exec.Command("go", "build", "-o", cmgBinary, "../cmd/cmg")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building cmg: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// procEnv is the demo's files run as separate cmg processes.
type procEnv struct {
	t     testing.TB
	m     *demo.Manifest
	procs []*proc
}

// proc is one cmg process.
type proc struct {
	t      testing.TB
	name   string
	args   []string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func newProcEnv(t testing.TB) *procEnv {
	t.Helper()
	dir := t.TempDir()
	base := freePortBase(t)
	out, err := exec.Command(cmgBinary, "demo", "init", "-dir", dir, "-port-base", strconv.Itoa(base)).CombinedOutput()
	if err != nil {
		t.Fatalf("cmg demo init: %v\n%s", err, out)
	}
	m, err := demo.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &procEnv{t: t, m: m}
	t.Cleanup(e.stopAll)
	return e
}

// startAll starts the roles, both gateway instances and both connectors, and
// waits until every connector holds a session to every instance.
func (e *procEnv) startAll() (gws, conns []*proc) {
	e.start("roles", "loadtest", "roles", "-listen", e.m.Roles.Listen)
	for _, g := range e.m.Gateways {
		gws = append(gws, e.start(fmt.Sprintf("gateway-%d", g.Instance), "gateway", "-config", g.Config))
	}
	for _, c := range e.m.Connectors {
		conns = append(conns, e.start("connector-"+c.Name, "connector", "-config", c.Config))
	}
	for i, g := range e.m.Gateways {
		waitFor(e.t, fmt.Sprintf("gateway %d to hold both connectors", i), 15*time.Second, func() bool {
			return e.sessions(g.AdminURL) == len(e.m.Connectors)
		})
	}
	return gws, conns
}

// sessions counts the connector sessions a gateway's status lists, or -1 when
// the gateway does not answer.
func (e *procEnv) sessions(adminURL string) int {
	st, ok := tryStatus(adminURL)
	if !ok {
		return -1
	}
	return len(st.Connectors)
}

func (e *procEnv) start(name string, args ...string) *proc {
	e.t.Helper()
	p := &proc{t: e.t, name: name, args: args, log: filepath.Join(e.t.TempDir(), name+".log")}
	p.run()
	e.procs = append(e.procs, p)
	return p
}

func (p *proc) run() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(cmgBinary, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		close(p.exited)
	}()
}

// restart starts the process again with the same arguments.
func (p *proc) restart() { p.run() }

// kill sends sig and waits for the process to exit.
func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// peakRSS is the process's peak resident set (VmHWM) in bytes.
func (p *proc) peakRSS() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	p.t.Fatalf("%s: no VmHWM", p.name)
	return 0
}

func (e *procEnv) stopAll() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].kill(syscall.SIGTERM)
	}
	if e.t.Failed() {
		for _, p := range e.procs {
			printTail(e.t, p.name, p.log, 30)
		}
	}
}

func tryStatus(adminURL string) (st gatewayStatusJSON, ok bool) {
	resp, err := httpGetQuick(adminURL + "/api/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if err := jsonDecode(resp.Body, &st); err != nil {
		return st, false
	}
	return st, true
}

// gatewayStatusJSON is the part of /api/v1/status the tests read.
type gatewayStatusJSON struct {
	Ready      bool `json:"ready"`
	Connectors []struct {
		Name string `json:"name"`
	} `json:"connectors"`
}

func (s gatewayStatusJSON) has(name string) bool {
	for _, c := range s.Connectors {
		if c.Name == name {
			return true
		}
	}
	return false
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// httpGetQuick is a GET that gives up after two seconds (a part may be down).
func httpGetQuick(url string) (*http.Response, error) {
	c := http.Client{Timeout: 2 * time.Second}
	return c.Get(url)
}
