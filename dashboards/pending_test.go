package dashboards

// ---------------------------------------------------------------------------
// PENDING: the one place that says what the dashboards and rules may use before
// the appliance provides it. TestAgainstDemo reports these as pending instead of
// failing, fails on any other missing name or empty panel, and FAILS when an entry
// below is no longer needed (the name is on /metrics, or the panel has data):
// delete the entry then, so this list only shrinks.
// ---------------------------------------------------------------------------

// pendingMetrics are metric names (as sampled: histograms by their _bucket name)
// that DESIGN section 11 defines, the dashboards or rules use, and main does not
// export yet, each with the work that adds it.
var pendingMetrics = map[string]string{
	// The notification channel (DESIGN section 9).
	"cmg_gateway_notification_channels":        "notification channel",
	"cmg_gateway_notifications_total":          "notification channel",
	"cmg_notification_delivery_seconds_bucket": "notification channel",
}

// panelsWithoutDemoData are panels ("dashboard uid/panel title") whose data the
// demo and its traffic cannot produce yet, even once every metric they use is
// exported.
var panelsWithoutDemoData = map[string]string{
	"cmg-tunnels/Tunnels on a fallback transport": "the demo's connectors reach every instance over TCP-TLS; needs a blocked TCP-TLS port",

	"cmg-overview/Devices online":                           "no notification channel in the built-in traffic (the load tester opens one per device)",
	"cmg-notifications/Devices online":                      "no notification channel in the built-in traffic",
	"cmg-notifications/Delivered (1 h)":                     "no notification sent in the demo",
	"cmg-notifications/Delivery p95":                        "no notification sent in the demo",
	"cmg-notifications/Channel spread":                      "no notification channel in the built-in traffic",
	"cmg-notifications/Channels open per instance":          "no notification channel in the built-in traffic",
	"cmg-notifications/Delivery results":                    "no notification sent in the demo",
	"cmg-notifications/Delivery latency":                    "no notification sent in the demo",
	"cmg-notifications/Delivery latency per instance (p95)": "no notification sent in the demo",

	"cmg-cost/Content served": "no content download in the built-in traffic",
}
