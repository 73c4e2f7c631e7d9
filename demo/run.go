package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/logging"
	"github.com/cmg-gateway/cmg/metrics"
	"github.com/cmg-gateway/cmg/pki"
)

// RunOptions configure Run.
type RunOptions struct {
	Dir      string
	PortBase int
	// Out receives the banner with the URLs; Logs the JSON logs of every part
	// (nil: one file per part under Dir/logs).
	Out  io.Writer
	Logs io.Writer
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string
}

// Run initialises the demo directory if needed, runs every part in this process,
// writes Dir/ready once every connector holds a session to every instance, and
// runs until ctx is done; it removes the ready file when it stops.
func Run(ctx context.Context, opts RunOptions) error {
	m, err := Load(opts.Dir)
	if err != nil || m.PortBase != opts.PortBase || m.PolicyFile == "" {
		if m, err = Init(opts.Dir, opts.PortBase); err != nil {
			return err
		}
	}
	if err := pki.RenewCRLs(pki.Dir(m.PKIDir), time.Now()); err != nil {
		return err
	}
	_ = os.Remove(m.ReadyFile)
	logs := &logFiles{dir: filepath.Join(m.Dir, "logs"), w: opts.Logs, level: opts.LogLevel}
	defer logs.close()

	issuer, err := SiteTokenIssuer(m)
	if err != nil {
		return err
	}
	contentIss, err := SiteIssuer(m)
	if err != nil {
		return err
	}
	rolesSrv, err := roles.New(roles.DefaultConfig(), logs.logger("roles"), roles.WithTokenIssuer(issuer), roles.WithContentTokens(contentIss))
	if err != nil {
		return err
	}
	rolesLn, err := net.Listen("tcp", m.Roles.Listen)
	if err != nil {
		return fmt.Errorf("demo: roles: %w", err)
	}
	defer rolesLn.Close()

	var gws []*gateway.Gateway
	for i, e := range m.Gateways {
		cfg := gateway.DefaultConfig()
		if err := configfile.Load(e.Config, &cfg); err != nil {
			return err
		}
		g, err := gateway.New(cfg, gateway.Options{Logger: logs.logger(fmt.Sprintf("gateway-%d", i)), Registry: metrics.NewRegistry("gateway")})
		if err != nil {
			return err
		}
		if err := g.Listen(); err != nil {
			return err
		}
		gws = append(gws, g)
	}
	var conns []*connector.Connector
	for _, e := range m.Connectors {
		cfg := connector.DefaultConfig()
		if err := configfile.Load(e.Config, &cfg); err != nil {
			return err
		}
		c, err := connector.New(cfg, connector.Options{Logger: logs.logger("connector-" + e.Name), Registry: metrics.NewRegistry("connector")})
		if err != nil {
			return err
		}
		if err := c.Listen(); err != nil {
			return err
		}
		conns = append(conns, c)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1+len(gws)+len(conns))
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				errc <- fmt.Errorf("demo: %s: %w", name, err)
				cancel()
			}
		}()
	}
	start("roles", func(ctx context.Context) error { return rolesSrv.Run(ctx, rolesLn) })
	for i, g := range gws {
		start(fmt.Sprintf("gateway-%d", i), g.Run)
	}
	for i, c := range conns {
		start("connector-"+m.Connectors[i].Name, c.Run)
	}

	if waitReady(runCtx, conns) {
		if err := os.WriteFile(m.ReadyFile, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			cancel()
		} else {
			printBanner(opts.Out, m)
		}
	}
	<-runCtx.Done()
	_ = os.Remove(m.ReadyFile)
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitReady waits until every connector holds a session to every instance.
func waitReady(ctx context.Context, conns []*connector.Connector) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ready := true
		for _, c := range conns {
			if c.Tunnel().Connected() < Instances {
				ready = false
				break
			}
		}
		if ready {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func printBanner(w io.Writer, m *Manifest) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "cmg demo is ready (%s)\n\n", m.ReadyFile)
	for _, g := range m.Gateways {
		fmt.Fprintf(w, "  gateway %d   devices %s   admin %s/metrics\n", g.Instance, g.ClientURL, g.AdminURL)
	}
	for _, c := range m.Connectors {
		fmt.Fprintf(w, "  connector %s  admin %s/api/v1/status\n", c.Name, c.AdminURL)
	}
	fmt.Fprintf(w, "  roles       %s (MP %s, SUP %s)\n\n", m.Roles.Listen, m.Roles.ManagementPoint, m.Roles.SoftwareUpdatePoint)
	fmt.Fprintf(w, "Try it:\n  %s\n\nLogs are in %s. Stop with Ctrl-C.\n", m.ExampleCurl, filepath.Join(m.Dir, "logs"))
}

// logFiles gives each part of the demo its own JSON log.
type logFiles struct {
	dir   string
	w     io.Writer
	level string
	mu    sync.Mutex
	files []*os.File
}

func (l *logFiles) logger(name string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(l.level))
	w := l.w
	if w == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		if err := os.MkdirAll(l.dir, 0o755); err == nil {
			if f, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
				l.files = append(l.files, f)
				w = f
			}
		}
		if w == nil {
			w = io.Discard
		}
	}
	h := logging.NewRateLimited(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}), logging.DefaultLimit, time.Now)
	return slog.New(h).With("part", name)
}

func (l *logFiles) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		f.Close()
	}
}
