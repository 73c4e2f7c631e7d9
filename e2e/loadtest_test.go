package e2e

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	ltdevice "github.com/cmg-gateway/cmg/loadtest/device"
	"github.com/cmg-gateway/cmg/loadtest/identity"
	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/report"
	ltrun "github.com/cmg-gateway/cmg/loadtest/run"
	"github.com/cmg-gateway/cmg/pki"
)

// loadtestConfig is a load test of the in-process demo: devices with
// certificates issued by the demo's device CA, the site's and the gateways'
// counters read around the run.
func (e *env) loadtestConfig(t *testing.T, p *profile.Profile, habits string, devices int, span time.Duration, scale float64) ltrun.Config {
	t.Helper()
	src, err := identity.NewIssuer(filepath.Join(e.m.PKIDir, pki.DeviceCACert), filepath.Join(e.m.PKIDir, pki.DeviceCAKey), "e2e-device", identity.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ltrun.DefaultConfig()
	for i, g := range e.m.Gateways {
		cfg.Targets = append(cfg.Targets, g.ClientURL)
		cfg.GatewayAdmin = append(cfg.GatewayAdmin, e.gws[i].admin)
	}
	cfg.RootCAs = []string{e.m.CAFile}
	cfg.SiteURL = "http://" + e.m.Roles.Listen
	cfg.MPRoleID, cfg.SUPRoleID = e.m.RoleIDs["management_point"], e.m.RoleIDs["software_update_point"]
	cfg.Profile, cfg.Habits, cfg.Devices, cfg.Duration, cfg.TimeScale, cfg.Identity = p, habits, devices, span, scale, src
	cfg.Timeout = 2 * time.Minute
	return cfg
}

// TestLoadtestDemo runs the load tester against the demo for four compressed
// hours under each habit set and checks what it reports: every exchange
// succeeded; the site saw the classes the profile sends; the site leg the
// simulated site counted agrees within 5 % with the gateway's HTTP-level
// egress towards the connector; the device leg equals the gateway's
// client-listener wire counter (once the gateway exports it); cmg's habits
// reuse and resume connections, the original's open one per exchange.
func TestLoadtestDemo(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, habits := range []string{profile.Original, profile.CMG} {
		t.Run(habits, func(t *testing.T) {
			p, _ := profile.Builtin("default")
			rep, err := ltrun.Run(context.Background(), e.loadtestConfig(t, p, habits, 4, 4*time.Hour, 3600))
			if err != nil {
				t.Fatal(err)
			}
			checkLoadtestReport(t, rep, habits)
		})
	}
}

func checkLoadtestReport(t *testing.T, rep *report.Report, habits string) {
	t.Helper()
	if rep.Throughput.Errors != 0 || len(rep.Errors) != 0 {
		t.Errorf("got %d errors %v, want none", rep.Throughput.Errors, rep.Errors)
	}
	// 4 devices x 4 h: 16 machine policy polls (every 60 min), 64 state
	// message cycles with data (1,440 a month), and under the original habits
	// 64 renewals (every 15 min); each series lands within one of its share.
	counts := map[string]float64{"machine_policy": 16, "state_messages": 32}
	if habits == profile.Original {
		counts["notification_renewal"] = 64
	}
	for _, c := range rep.Classes {
		want, ok := counts[c.Name]
		if ok && math.Abs(float64(c.Count)-want) > 4 {
			t.Errorf("%s: got %d exchanges, want %.0f +- 4", c.Name, c.Count, want)
		}
	}
	for _, kind := range []string{"mp.policy_assignments", "mp.state_message"} {
		if rep.SiteKinds[kind] == 0 {
			t.Errorf("the site saw no %s (it saw %v)", kind, rep.SiteKinds)
		}
	}
	e := rep.Egress
	if e.DeviceLeg <= 0 || e.SiteLeg == nil || *e.SiteLeg <= 0 {
		t.Fatalf("got device leg %d, site leg %v; want both measured", e.DeviceLeg, e.SiteLeg)
	}
	g := rep.Gateway
	if g == nil || g.SiteVsConnector == nil {
		t.Fatalf("no comparison with the gateway's connector egress: %+v", g)
	}
	if r := *g.SiteVsConnector; math.Abs(r-1) > 0.05 {
		t.Errorf("site leg %d vs the gateway's HTTP-level connector egress %.0f: ratio %.4f, want within 5 %%", *e.SiteLeg, *g.EgressConnector, r)
	}
	t.Run("device leg equals the client wire counter", func(t *testing.T) {
		if g.WireEgressClient == nil {
			t.Skip(`cmg_gateway_wire_egress_bytes_total{listener="client"} is not exported yet; this check runs by itself once it is`)
		}
		if float64(e.DeviceLeg) != *g.WireEgressClient {
			t.Errorf("device leg %d, gateway client wire egress %.0f: want equal", e.DeviceLeg, *g.WireEgressClient)
		}
	})
	c := rep.Connections
	switch habits {
	case profile.Original:
		if c.Resumed != 0 || c.Opened < int64(rep.Throughput.Exchanges)/2 {
			t.Errorf("original habits: got %d connections (%d resumed) for %d exchanges; want one per exchange, none resumed", c.Opened, c.Resumed, rep.Throughput.Exchanges)
		}
	case profile.CMG:
		if c.Resumed == 0 {
			t.Errorf("cmg habits: no connection resumed its TLS session (%d opened)", c.Opened)
		}
	}
	if rep.Roles[profile.RoleMP].Count == 0 {
		t.Errorf("no management point latencies: %v", rep.Roles)
	}
}

// TestLoadtestCostMetric runs devices in real time (time scale 1) with a class
// every 10 s, so the gateway sees every device within the run, and compares
// the gateway's cmg_cost_egress_bytes_per_client_monthly with the load
// tester's projection of the same traffic (both legs) within 5 %.
func TestLoadtestCostMetric(t *testing.T) {
	e := newEnv(t, envOptions{})
	p, _ := profile.Builtin("default")
	p.Classes = []profile.Class{{Name: "state_messages", Kind: profile.KindStateMessage, Interval: profile.Duration(10 * time.Second), Exchanges: 1, Request: 6500, Response: 200, Jitter: 0.5}}
	cfg := e.loadtestConfig(t, p, profile.Original, 20, 90*time.Second, 1)
	cfg.Targets, cfg.GatewayAdmin = cfg.Targets[:1], cfg.GatewayAdmin[:1]
	cfg.Spread = ltdevice.SpreadDevice
	rep, err := ltrun.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Gateway == nil || rep.Gateway.ProjectionVsCost == nil {
		t.Fatalf("no projection to compare: %+v", rep.Gateway)
	}
	if r := *rep.Gateway.ProjectionVsCost; math.Abs(r-1) > 0.05 {
		t.Errorf("load tester projection %.0f vs gateway's %.0f: ratio %.4f, want within 5 %%", *rep.Egress.MonthlyTotal, *rep.Gateway.PerClientMonthly, r)
	}
}
