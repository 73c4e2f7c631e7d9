// Package external reads the counters the load tester compares its own
// measurements with: the simulated site's exact socket byte counts
// (/roles/stats of loadtest/roles, the site leg of egress measured
// independently of the gateway) and the gateway's own metrics (its admin
// /metrics, names of DESIGN section 11).
package external

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cmg-gateway/cmg/loadtest/roles"
)

// The gateway metrics the report sets beside its own measurements (DESIGN
// section 11).
const (
	// MetricWireEgress{listener="client"}: bytes on the device sockets, TLS
	// included; equals the load tester's device leg.
	MetricWireEgress = "cmg_gateway_wire_egress_bytes_total"
	// MetricEgress{peer="connector"}: HTTP-level bytes towards the connector;
	// close to the site leg (the connector rewrites a few headers).
	MetricEgress = "cmg_gateway_egress_bytes_total"
	// MetricPerClient: the gateway's projection of a device's month.
	MetricPerClient = "cmg_cost_egress_bytes_per_client_monthly"
)

var client = &http.Client{Timeout: 10 * time.Second}

// SiteStats fetches the simulated site's counters from base (http://host:port).
func SiteStats(ctx context.Context, base string) (roles.Stats, error) {
	var st roles.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/roles/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("site stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("site stats: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("site stats: %w", err)
	}
	return st, nil
}

// GatewaySample is one scrape of a gateway instance. A nil value means the
// gateway does not export that metric.
type GatewaySample struct {
	AdminURL         string   `json:"admin_url"`
	WireEgressClient *float64 `json:"wire_egress_client_bytes,omitempty"`
	EgressConnector  *float64 `json:"egress_connector_bytes,omitempty"`
	EgressClient     *float64 `json:"egress_client_bytes,omitempty"`
	PerClientMonthly *float64 `json:"egress_bytes_per_client_monthly,omitempty"`
	Error            string   `json:"error,omitempty"`
}

// ScrapeGateway reads the metrics of one gateway instance's admin listener.
func ScrapeGateway(ctx context.Context, adminURL string) GatewaySample {
	s := GatewaySample{AdminURL: adminURL}
	fams, err := scrape(ctx, strings.TrimRight(adminURL, "/")+"/metrics")
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.WireEgressClient = sum(fams, MetricWireEgress, "listener", "client")
	s.EgressConnector = sum(fams, MetricEgress, "peer", "connector")
	s.EgressClient = sum(fams, MetricEgress, "peer", "client")
	s.PerClientMonthly = sum(fams, MetricPerClient)
	return s
}

func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// sum adds the series of family name whose labels include the pairs; nil when
// the family is absent.
func sum(fams map[string]*dto.MetricFamily, name string, labels ...string) *float64 {
	f := fams[name]
	if f == nil {
		return nil
	}
	total := 0.0
	for _, m := range f.Metric {
		if !has(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return &total
}

func has(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		ok := false
		for _, l := range m.Label {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Delta is after minus before, nil when either is missing.
func Delta(before, after *float64) *float64 {
	if before == nil || after == nil {
		return nil
	}
	d := *after - *before
	return &d
}
