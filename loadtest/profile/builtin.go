package profile

import (
	"time"

	"github.com/cmg-gateway/cmg/metrics/cost"
)

// The built-in profiles: client-traffic.md section 6, row by row. Sizes are KB
// of 1,000 bytes as there; loadtest/README.md gives the source of each row.
var builtins = map[string]func() *Profile{
	"default": defaultProfile,
	"dynamic": dynamicProfile,
}

func k(v float64) cost.Bytes { return cost.Bytes(v * 1000) }

func iv(d time.Duration) Duration { return Duration(d) }

const day = 24 * time.Hour

// commonProfile holds what both built-in profiles share: the fixed costs, the
// habit sets and auth.
func commonProfile(name, note string) *Profile {
	return &Profile{
		Name:   name,
		Note:   note,
		Habits: Original,
		Auth:   AuthToken,
		OriginalHabits: Habits{
			ConnectionPerExchange: true,
			MaxTLSVersion:         "1.2",
			ServerChain:           "rsa2048-intermediate",
		},
		CMGHabits: Habits{
			KeepAliveIdle: iv(110 * time.Second),
			TLSResumption: true,
			ResumedShare:  1,
			MaxTLSVersion: "1.3",
			ServerChain:   "any",
		},
		Fixed: Fixed{
			TLSFullHandshake:    k(6.0),
			TLSResumedHandshake: k(0.3),
			RequestHeaders:      k(2.5),
			BearerToken:         k(1.6),
			ResponseHeaders:     k(0.4),
			TunnelFraming:       k(0.1),
		},
	}
}

func defaultProfile() *Profile {
	p := commonProfile("default", "default client settings (client-traffic.md section 4 and 6): 99.3 MB per device per month with the original product's habits")
	p.Classes = []Class{
		{Name: "machine_policy", Kind: KindMachinePolicy, Interval: iv(60 * time.Minute), Exchanges: 1, Request: k(5.8), Response: k(2.6), Jitter: 0.2},
		{Name: "user_policy", Kind: KindUserPolicy, PerMonth: 0, Exchanges: 1, Request: k(5.8), Response: k(2.6), Jitter: 0.2},
		{Name: "notification_renewal", Kind: KindNotificationRenewal, Interval: iv(15 * time.Minute), Exchanges: 1, Request: k(2.5), Response: k(1.0), Jitter: 0.1, Habits: Original},
		{Name: "notification_channel", Kind: KindNotificationChannel, Interval: iv(day), Exchanges: 1, Request: 0, Response: k(138.24), Jitter: 1, Habits: CMG,
			Note: "one SSE channel, reconnected daily; heartbeats every 25 s of 40 B on the wire (DESIGN section 9)"},
		{Name: "state_messages", Kind: KindStateMessage, PerMonth: 1440, Exchanges: 1, Request: k(6.5), Response: k(0.2), Jitter: 0.5},
		{Name: "status_messages", Kind: KindStatusMessage, PerMonth: 300, Exchanges: 1, Request: k(6.5), Response: k(0.2), Jitter: 1},
		{Name: "ccm_token", Kind: KindCCMToken, Interval: iv(8 * time.Hour), Exchanges: 1, Request: k(2.0), Response: k(1.6), Jitter: 0.1},
		{Name: "location", Kind: KindLocation, Interval: iv(day), Exchanges: 4, Request: k(6.5), Response: k(8.0), Jitter: 0.2},
		{Name: "wsus_location", Kind: KindWSUSLocation, PerMonth: 30, Exchanges: 1, Request: k(6.0), Response: k(2.5), Jitter: 0.5},
		{Name: "policy_bodies", Kind: KindPolicyBody, Follows: "machine_policy", PerMonth: 60, Exchanges: 1, Request: k(0.5), Response: k(30)},
		{Name: "ci_documents", Kind: KindCIDocument, Follows: "machine_policy", PerMonth: 200, Exchanges: 1, Request: k(0.5), Response: k(40)},
		{Name: "sup_delta_scan", Kind: KindSUPScan, PerMonth: 8, Exchanges: 4, Request: k(90), Response: k(15), Jitter: 0.3},
		{Name: "patch_metadata", Kind: KindSUPMetadata, PerMonth: 1, Exchanges: 20, Items: 200, Request: k(60), Response: k(8000), Jitter: 0.1},
		{Name: "definition_metadata", Kind: KindSUPMetadata, Follows: "sup_delta_scan", PerMonth: 0, Exchanges: 1, Items: 12, Request: k(1), Response: k(25)},
		{Name: "wua_report", Kind: KindWUAReport, PerMonth: 10, Exchanges: 1, Request: k(4), Response: k(0.5), Jitter: 1},
		{Name: "hinv_delta", Kind: KindBITSUpload, PerMonth: 4.3, Exchanges: 3, Request: k(60), Response: k(1), Jitter: 0.5},
		{Name: "hinv_full", Kind: KindBITSUpload, PerMonth: 0.33, Exchanges: 5, Request: k(600), Response: k(1), Jitter: 0.5},
		{Name: "sinv", Kind: KindBITSUpload, PerMonth: 4.3, Exchanges: 3, Request: k(15), Response: k(1), Jitter: 0.5},
		{Name: "ddr", Kind: KindDDR, PerMonth: 4.3, Exchanges: 1, Request: k(12), Response: k(0.2), Jitter: 0.5},
		{Name: "metering", Kind: KindMetering, PerMonth: 4.3, Exchanges: 1, Request: k(6), Response: k(0.2), Jitter: 0.5},
		{Name: "app_list", Kind: KindAppList, PerMonth: 0, Exchanges: 1, Request: k(3), Response: k(60), Jitter: 1},
		{Name: "script_results", Kind: KindScriptResult, PerMonth: 0, Exchanges: 1, Request: k(20), Response: k(1.7), Jitter: 1},
		{Name: "content", Kind: KindContentDownload, PerMonth: 0, Exchanges: 1, Request: 0, Response: 0, Jitter: 1,
			Note: "content from the cloud distribution point is storage egress on top of the planning figure (client-traffic.md section 5)"},
	}
	return p
}

func dynamicProfile() *Profile {
	p := defaultProfile()
	p.Name = "dynamic"
	p.Note = "aggressive client settings (client-traffic.md sections 4 and 6): 297.9 MB per device per month with the original product's habits"
	set := func(name string, f func(c *Class)) {
		for i := range p.Classes {
			if p.Classes[i].Name == name {
				f(&p.Classes[i])
				return
			}
		}
		panic("profile: no class " + name)
	}
	set("machine_policy", func(c *Class) { c.Interval, c.Response = iv(15*time.Minute), k(3.5) })
	set("user_policy", func(c *Class) { c.PerMonth = 1440 })
	set("state_messages", func(c *Class) { c.PerMonth, c.Request = 6480, k(6.9) })
	set("status_messages", func(c *Class) { c.PerMonth = 600 })
	set("ccm_token", func(c *Class) { c.Interval = iv(4 * time.Hour) })
	set("wsus_location", func(c *Class) { c.PerMonth = 150 })
	set("policy_bodies", func(c *Class) { c.PerMonth = 150 })
	set("ci_documents", func(c *Class) { c.PerMonth = 400 })
	set("sup_delta_scan", func(c *Class) { c.PerMonth = 150 })
	set("definition_metadata", func(c *Class) { c.PerMonth = 90 })
	set("wua_report", func(c *Class) { c.PerMonth = 60 })
	set("hinv_delta", func(c *Class) { c.PerMonth, c.Request = 30, k(150) })
	set("sinv", func(c *Class) { c.PerMonth = 30 })
	set("ddr", func(c *Class) { c.PerMonth = 30 })
	set("metering", func(c *Class) { c.PerMonth = 30 })
	set("app_list", func(c *Class) { c.PerMonth = 60 })
	set("script_results", func(c *Class) { c.PerMonth = 20 })
	return p
}
