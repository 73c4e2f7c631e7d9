// Package profiling is cmg's continuous profiling: the `profiling` section of the
// gateway and connector configurations, and a Pyroscope push (grafana/pyroscope-go)
// of CPU, allocation, in-use and goroutine profiles, tagged with the process's
// instance and role, when a server URL is configured (DESIGN section 11). Without
// one it does nothing.
//
// Go's CPU profiler is one per process, so one profiler runs per process: the
// `cmg gateway` and `cmg connector` commands start it. Labels tells a part of the
// process apart inside the profiles: the gateway and the connector label the
// goroutines of their Run with their instance and role (pprof goroutine labels,
// inherited by every goroutine they start), so each CPU sample says which part it
// came from even when several parts share a process, as in `cmg demo`.
package profiling

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/grafana/pyroscope-go"

	"github.com/cmg-gateway/cmg/configfile"
)

// Config is the `profiling` section of both configurations.
//
//	profiling:
//	  server_url: https://pyroscope.example:4040   # empty: profiling off
//	  application_name: cmg                        # tags instance and role are added
//	  upload_interval: 15s
//	  basic_auth_user: cmg
//	  basic_auth_password_file: /etc/cmg/pyroscope-password
//	  tenant_id: ""                                # X-Scope-OrgID, for a multi-tenant server
type Config struct {
	// ServerURL is the Pyroscope server (profiles go to ServerURL/ingest).
	// Empty turns profiling off.
	ServerURL string `yaml:"server_url"`
	// ApplicationName is the application the profiles are filed under.
	ApplicationName string `yaml:"application_name"`
	// UploadInterval is how often profiles are pushed (at least 1s).
	UploadInterval time.Duration `yaml:"upload_interval"`
	// BasicAuthUser and BasicAuthPasswordFile authenticate the push; the
	// password is read from the file (secrets never sit in the config).
	BasicAuthUser         string `yaml:"basic_auth_user,omitempty"`
	BasicAuthPasswordFile string `yaml:"basic_auth_password_file,omitempty"`
	// TenantID is sent as X-Scope-OrgID.
	TenantID string `yaml:"tenant_id,omitempty"`
}

// DefaultConfig is profiling off, pushing every 15 s once a URL is set.
func DefaultConfig() Config {
	return Config{ApplicationName: "cmg", UploadInterval: 15 * time.Second}
}

// Enabled reports whether a server URL is configured.
func (c Config) Enabled() bool { return c.ServerURL != "" }

// Validate reports every problem of the section.
func (c Config) Validate() error {
	var ps configfile.Problems
	if c.ServerURL != "" {
		u, err := url.Parse(c.ServerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.Addf("server_url", "%q is not an http or https URL", c.ServerURL)
		}
	}
	if c.ApplicationName == "" || strings.ContainsAny(c.ApplicationName, "{}=, ") {
		ps.Addf("application_name", "%q must be non-empty without braces, '=', ',' or spaces", c.ApplicationName)
	}
	if c.UploadInterval < time.Second {
		ps.Addf("upload_interval", "must be at least 1s, not %v", c.UploadInterval)
	}
	if (c.BasicAuthUser == "") != (c.BasicAuthPasswordFile == "") {
		ps.Addf("basic_auth_user", "basic_auth_user and basic_auth_password_file go together")
	}
	return ps.Err()
}

// Tags name the process in its profiles.
type Tags struct {
	// Instance is the gateway's instance index or the connector's name.
	Instance string
	// Role is "gateway" or "connector".
	Role string
}

// Labels returns ctx with the pprof labels instance and role, and applies them to
// the calling goroutine; goroutines it starts from then on inherit them.
func Labels(ctx context.Context, t Tags) context.Context {
	ctx = pprof.WithLabels(ctx, pprof.Labels("instance", t.Instance, "role", t.Role))
	pprof.SetGoroutineLabels(ctx)
	return ctx
}

// Run pushes profiles until ctx is done, then pushes what it has and returns.
// Without a server URL it returns at once. It fails only when the profiler
// cannot start (a bad password file, or another CPU profile already running).
func Run(ctx context.Context, cfg Config, tags Tags, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !cfg.Enabled() {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc := pyroscope.Config{
		ApplicationName: cfg.ApplicationName,
		ServerAddress:   cfg.ServerURL,
		Tags:            map[string]string{"instance": tags.Instance, "role": tags.Role},
		UploadRate:      cfg.UploadInterval,
		TenantID:        cfg.TenantID,
		Logger:          logger{log},
		ProfileTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU, pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
			pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
		},
	}
	if cfg.BasicAuthUser != "" {
		pw, err := os.ReadFile(cfg.BasicAuthPasswordFile)
		if err != nil {
			return fmt.Errorf("profiling: basic_auth_password_file: %w", err)
		}
		pc.BasicAuthUser, pc.BasicAuthPassword = cfg.BasicAuthUser, strings.TrimSpace(string(pw))
	}
	p, err := pyroscope.Start(pc)
	if err != nil {
		return fmt.Errorf("profiling: %w", err)
	}
	log.Info("profiling: pushing profiles", "server", cfg.ServerURL, "every", cfg.UploadInterval.String(),
		"instance", tags.Instance, "role", tags.Role)
	<-ctx.Done()
	return p.Stop()
}

// logger routes pyroscope's messages to slog: errors as warnings (a profile that
// could not be pushed is no reason to alarm), the rest at debug.
type logger struct{ l *slog.Logger }

func (l logger) Infof(f string, a ...any)  { l.l.Debug("profiling: " + fmt.Sprintf(f, a...)) }
func (l logger) Debugf(f string, a ...any) { l.l.Debug("profiling: " + fmt.Sprintf(f, a...)) }
func (l logger) Errorf(f string, a ...any) { l.l.Warn("profiling: " + fmt.Sprintf(f, a...)) }
