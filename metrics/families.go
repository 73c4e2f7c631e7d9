package metrics

// Family is one metric family of the contract (DESIGN section 11): its name,
// type and label names, and which process exports it.
type Family struct {
	Name   string
	Type   string // counter, gauge, histogram
	Labels []string
}

// GatewayFamilies are the families a gateway instance exports, as built so far.
// It is the one list the tests check a running gateway against (its /metrics
// page, and a real Prometheus that scrapes it); the issues that build the
// notification channel, the content cache and the policy engine's wiring add
// their families here.
var GatewayFamilies = []Family{
	{"cmg_build_info", "gauge", []string{"version", "commit", "goversion", "component"}},
	{"cmg_gateway_requests_total", "counter", []string{"role", "method", "code"}},
	{"cmg_gateway_request_duration_seconds", "histogram", []string{"role"}},
	{"cmg_gateway_requests_in_flight", "gauge", []string{"role"}},
	{"cmg_gateway_egress_bytes_total", "counter", []string{"peer", "role"}},
	{"cmg_gateway_ingress_bytes_total", "counter", []string{"peer", "role"}},
	{"cmg_gateway_wire_egress_bytes_total", "counter", []string{"listener"}},
	{"cmg_gateway_wire_ingress_bytes_total", "counter", []string{"listener"}},
	{"cmg_gateway_client_connections", "gauge", nil},
	{"cmg_gateway_tls_handshakes_total", "counter", []string{"result"}},
	{"cmg_gateway_auth_total", "counter", []string{"method", "result"}},
	{"cmg_gateway_clients_active", "gauge", []string{"window"}},
	{"cmg_tunnel_sessions", "gauge", []string{"connector", "site", "transport"}},
	{"cmg_tunnel_rtt_seconds", "gauge", []string{"connector"}},
	{"cmg_tunnel_streams_open", "gauge", []string{"connector"}},
	{"cmg_tunnel_connects_total", "counter", []string{"connector", "transport", "result"}},
	{"cmg_route_connectors", "gauge", []string{"role"}},
	{"cmg_cost_egress_price_per_gigabyte", "gauge", []string{"currency"}},
	{"cmg_cost_projected_monthly_egress_bytes", "gauge", nil},
	{"cmg_cost_projected_monthly", "gauge", []string{"component", "currency"}},
	{"cmg_cost_egress_bytes_per_client_monthly", "gauge", nil},
	{"cmg_cost_model_egress_bytes_per_client_monthly", "gauge", []string{"bound"}},
	{"cmg_gateway_errors_total", "counter", []string{"reason"}},
	{"cmg_cert_expiry_timestamp_seconds", "gauge", []string{"cert"}},
	{"cmg_crl_last_success_timestamp_seconds", "gauge", nil},
	{"cmg_crl_failures_total", "counter", nil},
	{"cmg_config_reloads_total", "counter", []string{"what", "result"}},
	{"cmg_tunnel_refused_total", "counter", []string{"reason"}},
	{"cmg_gateway_ready", "gauge", nil},
	{"cmg_gateway_capacity_devices", "gauge", nil},
	{"cmg_gateway_policy_decisions_total", "counter", []string{"rule", "action"}},
	{"cmg_cost_egress_budget_used_ratio", "gauge", nil},
	{"cmg_cost_egress_budget_threshold_ratio", "gauge", []string{"level"}},
	{"cmg_content_requests_total", "counter", []string{"result"}},
	{"cmg_content_served_bytes_total", "counter", []string{"source"}},
	{"cmg_content_cache_bytes", "gauge", nil},
	{"cmg_gateway_notification_channels", "gauge", nil},
	{"cmg_gateway_notifications_total", "counter", []string{"result"}},
	{"cmg_notification_delivery_seconds", "histogram", nil},
	// The limits of SECURITY.md (appliance/gateway/limits.go).
	{"cmg_gateway_connections_refused_total", "counter", []string{"reason"}},
	{"cmg_gateway_requests_queued", "gauge", nil},
	{"cmg_gateway_client_sources", "gauge", nil},
}

// ConnectorFamilies are the families a connector exports, as built so far.
var ConnectorFamilies = []Family{
	{"cmg_build_info", "gauge", []string{"version", "commit", "goversion", "component"}},
	{"cmg_connector_requests_total", "counter", []string{"role", "code"}},
	{"cmg_connector_backend_duration_seconds", "histogram", []string{"role"}},
	{"cmg_connector_backend_up", "gauge", []string{"role"}},
	{"cmg_connector_tunnel_sessions", "gauge", []string{"gateway_instance", "transport"}},
	{"cmg_connector_tunnel_reconnects_total", "counter", []string{"gateway_instance"}},
	{"cmg_connector_tunnel_rtt_seconds", "gauge", []string{"gateway_instance"}},
}
