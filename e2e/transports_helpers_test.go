package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/demo"
)

// newGatewaysOnly runs the demo's roles and gateway instances in this process,
// without connectors (the tests start their own, or none).
func newGatewaysOnly(t *testing.T, gw func(i int, c *gateway.Config)) *env {
	t.Helper()
	m, err := demo.Init(t.TempDir(), freePortBase(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m}
	t.Cleanup(e.stopAll)
	e.startRoles()
	for i := range m.Gateways {
		cfg := demo.GatewayConfig(m, i)
		if gw != nil {
			gw(i, &cfg)
		}
		e.gws = append(e.gws, e.startGateway(i, cfg))
	}
	t.Cleanup(e.stopAll)
	return e
}

// writeConnectorConfig writes a demo connector configuration, changed by edit,
// and returns its path.
func writeConnectorConfig(t *testing.T, m *demo.Manifest, j int, edit func(c *connector.Config)) string {
	t.Helper()
	cfg := demo.ConnectorConfig(m, j)
	if edit != nil {
		edit(&cfg)
	}
	return writeYAMLFile(t, "connector-"+cfg.Name+".yaml", cfg)
}

func writeYAMLFile(t *testing.T, name string, v any) string {
	t.Helper()
	data, err := configfile.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCmg runs the built binary and returns its stdout, stderr and exit code.
func runCmg(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(cmgBinary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("cmg %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// startTinyproxy runs Debian's tinyproxy on listen with basic auth user:pass,
// allowing CONNECT to the given ports, until the test ends.
func startTinyproxy(t *testing.T, listen, user, pass string, ports ...int) {
	t.Helper()
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %s\nListen %s\nTimeout 60\nMaxClients 100\nLogLevel Info\nUser nobody\nGroup nogroup\n", port, host)
	if user != "" {
		fmt.Fprintf(&conf, "BasicAuth %s %s\n", user, pass)
	}
	for _, p := range ports {
		fmt.Fprintf(&conf, "ConnectPort %d\n", p)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "tinyproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tinyproxy", "-d", "-c", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("tinyproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			printTail(t, "tinyproxy", logf.Name(), 20)
		}
	})
	waitFor(t, "tinyproxy to listen on "+listen, 10*time.Second, func() bool {
		select {
		case <-exited:
			printTail(t, "tinyproxy", logf.Name(), 20)
			t.Fatalf("tinyproxy exited")
		default:
		}
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}
