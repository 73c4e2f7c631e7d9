// Package run runs a load test: it makes the devices of a shard with their
// identities, drives their classes on the open-loop schedule of a compressible
// clock against the targets, reads the site's and the gateway's counters
// before and after, and builds the report.
package run

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/loadtest/device"
	"github.com/cmg-gateway/cmg/loadtest/external"
	"github.com/cmg-gateway/cmg/loadtest/identity"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/report"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/loadtest/schedule"
)

// Config is one load test run.
type Config struct {
	// Targets are the gateway instances' device URLs (https://host:port).
	Targets []string
	// Devices is the number of devices of the whole test (all shards).
	Devices int
	Profile *profile.Profile
	// Habits overrides the profile's habit set when not empty.
	Habits string
	// Duration is the simulated span; TimeScale simulated seconds per wall second.
	Duration  time.Duration
	TimeScale float64
	// Shard and Shards: this process runs devices i with i % Shards == Shard.
	Shard, Shards int
	// Spread is device.SpreadConnection or device.SpreadDevice.
	Spread   string
	Identity identity.Source
	// RootCAs are PEM files of the roots devices trust.
	RootCAs []string
	// ServerName overrides the TLS server name (default: the target's host).
	ServerName string
	MPRoleID   string
	SUPRoleID  string
	MPHost     string
	// SiteURL is the simulated roles' base URL (its /roles/stats), empty for none.
	SiteURL string
	// GatewayAdmin are the gateway instances' admin URLs to scrape, or none.
	GatewayAdmin []string
	// Timeout bounds one exchange (wall), connecting included.
	Timeout time.Duration
	Seed    uint64
	// MaxInFlight bounds occurrences in progress in this process; an
	// occurrence due beyond it is counted as a tester_overloaded error.
	MaxInFlight int
	// Progress, when set, receives a progress bar line every half second.
	Progress io.Writer
	// Bucket is the timeline's bucket width (0: about 1/200 of the run).
	Bucket time.Duration
}

// DefaultConfig returns the defaults of `cmg loadtest`.
func DefaultConfig() Config {
	return Config{
		Devices: 100, Duration: time.Hour, TimeScale: 1, Shards: 1, Spread: device.SpreadConnection,
		Timeout: 60 * time.Second, Seed: 1, MaxInFlight: 15000,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var ps configfile.Problems
	if len(c.Targets) == 0 {
		ps.Addf("target", "at least one target URL is required")
	}
	if c.Devices < 1 || c.Devices > 10_000_000 {
		ps.Addf("devices", "must be 1 to 10,000,000, not %d", c.Devices)
	}
	if c.Profile == nil {
		ps.Addf("profile", "required")
	} else if err := c.Profile.Validate(); err != nil {
		ps.Merge("profile", err)
	}
	if c.Habits != "" && c.Habits != profile.Original && c.Habits != profile.CMG {
		ps.Addf("habits", "must be %s or %s, not %q", profile.Original, profile.CMG, c.Habits)
	}
	if c.Duration <= 0 {
		ps.Addf("duration", "must be positive")
	}
	if !(c.TimeScale > 0 && c.TimeScale <= 1e7) {
		ps.Addf("time-scale", "must be above 0 and at most 10,000,000, not %v", c.TimeScale)
	}
	if c.Shards < 1 || c.Shard < 0 || c.Shard >= c.Shards {
		ps.Addf("shard", "must be i/n with 0 <= i < n, not %d/%d", c.Shard, c.Shards)
	}
	if c.Spread != device.SpreadConnection && c.Spread != device.SpreadDevice {
		ps.Addf("spread", "must be %s or %s, not %q", device.SpreadConnection, device.SpreadDevice, c.Spread)
	}
	if c.Identity == nil {
		ps.Addf("identity", "a device identity source is required")
	}
	if c.MPRoleID == "" || c.SUPRoleID == "" {
		ps.Addf("role-ids", "the management point's and software update point's RoleIDs are required")
	}
	if c.Timeout <= 0 {
		ps.Addf("timeout", "must be positive")
	}
	if c.MaxInFlight < 1 {
		ps.Addf("max-in-flight", "must be at least 1")
	}
	return ps.Err()
}

// habits is the habit set the run uses.
func (c Config) habits() string {
	if c.Habits != "" {
		return c.Habits
	}
	return c.Profile.Habits
}

// localDevices are the global indices of this shard's devices.
func (c Config) localDevices() []int {
	var out []int
	for i := c.Shard; i < c.Devices; i += c.Shards {
		out = append(out, i)
	}
	return out
}

// Run runs the test and returns its report. It stops early, with a report of
// what ran, when ctx is done.
func Run(ctx context.Context, cfg Config) (*report.Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	habitsName := cfg.habits()
	habits := cfg.Profile.HabitsFor(habitsName)
	roots, err := loadRoots(cfg.RootCAs)
	if err != nil {
		return nil, err
	}
	bal, err := device.NewBalancer(cfg.Targets, cfg.Spread, cfg.Seed)
	if err != nil {
		return nil, err
	}
	plans := device.Plans(cfg.Profile, habitsName)
	if len(plans) == 0 {
		return nil, fmt.Errorf("loadtest: profile %s has no simulated class under %s habits", cfg.Profile.Name, habitsName)
	}
	local := cfg.localDevices()
	ids, err := makeIdentities(ctx, cfg.Identity, local)
	if err != nil {
		return nil, err
	}

	wall := time.Duration(float64(cfg.Duration) / cfg.TimeScale)
	bucket := cfg.Bucket
	if bucket <= 0 {
		bucket = max(wall/200, time.Second)
	}
	counters := &device.Counters{}
	started := time.Now()
	rec := report.NewRecorder(started, bucket)
	clock := schedule.NewClock(started, started, cfg.TimeScale)
	env := &device.Env{
		Profile: cfg.Profile, HabitsName: habitsName, Habits: habits, Balancer: bal,
		TLS: &tls.Config{RootCAs: roots, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}, Counters: counters,
		Observer: rec, Clock: clock, MPRoleID: cfg.MPRoleID, SUPRoleID: cfg.SUPRoleID, MPHost: cfg.MPHost,
		Timeout: cfg.Timeout, Seed: cfg.Seed,
	}
	if env.MPHost == "" {
		env.MPHost = "mp01.corp.example.com"
	}
	devs := make([]*device.Device, len(local))
	q := &schedule.Queue{}
	for j, gi := range local {
		devs[j] = device.New(env, gi, ids[j])
		for p, pl := range plans {
			q.Add(j, p, schedule.NewSeries(pl.Class.Period(), pl.Class.Jitter, seriesSeed(cfg.Seed, gi, pl.Class.Name)))
		}
	}

	var siteBefore, siteAfter *roles.Stats
	if cfg.SiteURL != "" {
		st, err := external.SiteStats(ctx, cfg.SiteURL)
		if err != nil {
			return nil, err
		}
		siteBefore = &st
	}
	var gwBefore, gwAfter []external.GatewaySample
	if len(cfg.GatewayAdmin) > 0 {
		gwBefore = scrapeAll(ctx, cfg.GatewayAdmin)
	}

	// The clock starts once everything is ready.
	started = time.Now()
	rec = report.NewRecorder(started, bucket)
	env.Observer = rec
	*clock = *schedule.NewClock(started, started, cfg.TimeScale)

	var wg sync.WaitGroup
	var inflight atomic.Int64
	stopProgress := startProgress(cfg.Progress, clock, cfg.Duration, rec, &inflight, counters)
	timer := time.NewTimer(0)
	<-timer.C
	simStart := started
loop:
	for q.Len() > 0 {
		ev := q.Peek()
		if ev.At >= cfg.Duration {
			break
		}
		due := clock.WallAt(simStart.Add(ev.At))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		ev = q.Pop()
		if inflight.Load() >= int64(cfg.MaxInFlight) {
			rec.Reject("tester_overloaded")
			continue
		}
		inflight.Add(1)
		wg.Add(1)
		go func(d *device.Device, pl *device.Plan, due time.Time) {
			defer wg.Done()
			defer inflight.Add(-1)
			d.Occur(ctx, pl, due)
		}(devs[ev.Device], plans[ev.Plan], due)
	}
	// Let the schedule's span run out before stopping (the last occurrences
	// may be due well before its end).
	if end := clock.WallAt(simStart.Add(cfg.Duration)); ctx.Err() == nil {
		if d := time.Until(end); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
	simulated := min(clock.Elapsed(), cfg.Duration)
	if ctx.Err() == nil {
		simulated = cfg.Duration
	}
	wg.Wait()
	var cw sync.WaitGroup
	for _, d := range devs {
		cw.Add(1)
		go func() { defer cw.Done(); d.Close() }()
	}
	cw.Wait()
	finished := time.Now()
	stopProgress()

	// Counters are updated as responses finish; give the last ones a moment.
	time.Sleep(300 * time.Millisecond)
	bg := context.WithoutCancel(ctx)
	if cfg.SiteURL != "" {
		st, err := external.SiteStats(bg, cfg.SiteURL)
		if err == nil {
			siteAfter = &st
		}
	}
	if len(cfg.GatewayAdmin) > 0 {
		gwAfter = scrapeAll(bg, cfg.GatewayAdmin)
	}
	in := report.Inputs{
		Started: started, Finished: finished, Simulated: simulated, TimeScale: cfg.TimeScale,
		Devices: len(local), Profile: cfg.Profile, Habits: habitsName, Identity: cfg.Identity.Describe(),
		Spread: cfg.Spread, Targets: bal.Stats(), Counters: counters,
		SiteBefore: siteBefore, SiteAfter: siteAfter, GatewayBefore: gwBefore, GatewayAfter: gwAfter,
	}
	if cfg.Shards > 1 {
		in.Shard = strconv.Itoa(cfg.Shard) + "/" + strconv.Itoa(cfg.Shards)
		in.Notes = append(in.Notes, "a shard's site and gateway counters include every shard's traffic while they run together; merge the shards' reports with `cmg loadtest merge`")
	}
	if chain := counters.ServerChain(); len(chain) > 0 {
		in.ServerChain = identity.DescribeChain(chain)
		if habits.ServerChain == "rsa2048-intermediate" && !identity.IsOriginalChain(chain) {
			in.Notes = append(in.Notes, "the original habits assume an RSA-2048 server chain with an intermediate; the gateway showed "+in.ServerChain+", so the handshake bytes differ from the original's")
		}
	}
	for _, c := range cfg.Profile.Classes {
		if c.RunsUnder(habitsName) && !c.Kind.Simulated() && c.Monthly() > 0 {
			in.Notes = append(in.Notes, fmt.Sprintf("class %s (%s) is priced by the model but not simulated yet", c.Name, c.Kind))
		}
	}
	return rec.Build(in), nil
}

func seriesSeed(seed uint64, dev int, class string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(class))
	return seed*0x9e3779b97f4a7c15 ^ uint64(dev)*0xbf58476d1ce4e5b9 ^ h.Sum64()
}

func loadRoots(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return x509.SystemCertPool()
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("loadtest: no certificate in %s", f)
		}
	}
	return pool, nil
}

// makeIdentities makes the devices' identities on every core.
func makeIdentities(ctx context.Context, src identity.Source, idx []int) ([]identity.Identity, error) {
	out := make([]identity.Identity, len(idx))
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(idx) || ctx.Err() != nil {
					return
				}
				id, err := src.Identity(idx[j])
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				out[j] = id
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

func scrapeAll(ctx context.Context, urls []string) []external.GatewaySample {
	out := make([]external.GatewaySample, len(urls))
	for i, u := range urls {
		out[i] = external.ScrapeGateway(ctx, u)
	}
	return out
}
