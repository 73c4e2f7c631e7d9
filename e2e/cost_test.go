package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/metrics/cost"
	"github.com/cmg-gateway/cmg/pki"
)

// TestCostMetricsForKnownTraffic sends a known traffic (5 devices, each a 1 MB
// download and a 100 kB upload) through gateway instance 0, whose cost model
// runs on a clock the test moves, and checks every cost gauge against values
// computed here by hand from the model's rules (DESIGN section 11): projected
// monthly egress = the egress of the last hour (both wire counters) / 3600 s ×
// 30 days; per client = that / the distinct devices; egress cost = this
// instance's share of the tiered price of the service's volume; compute = the
// hourly price × 720 h.
func TestCostMetricsForKnownTraffic(t *testing.T) {
	const devices = 5
	start := time.Now()
	var costClock atomic.Int64
	costClock.Store(start.UnixNano())
	e := newEnv(t, envOptions{
		gateway: func(i int, c *gateway.Config) {
			c.Cost.Prices = cost.Prices{
				Currency: "EUR",
				EgressTiers: []cost.Tier{
					{UpToGB: 2, PricePerGB: 0},
					{UpToGB: 5, PricePerGB: 0.10},
					{PricePerGB: 0.05},
				},
				InstanceHourlyPrice: 0.5,
				Instances:           2,
				CapacityDevices:     5000,
			}
			c.Tunnel.PingInterval = time.Hour // a quiet tunnel once the traffic stops
		},
		gatewayOptions: func(i int, o *gateway.Options) {
			if i == 0 {
				o.CostNow = func() time.Time { return time.Unix(0, costClock.Load()) }
			}
		},
	})
	gw := e.m.Gateways[0]
	pd := pki.Dir(e.m.PKIDir)
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(e.m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pem)
	upload := bytes.Repeat([]byte("x"), 100_000)
	for d := 1; d <= devices; d++ {
		name := fmt.Sprintf("cost-device-%d", d)
		if err := pki.IssueClient(pd, name, start); err != nil {
			t.Fatal(err)
		}
		cert, err := tls.LoadX509KeyPair(pd.Path(pki.ClientCert(name)), pd.Path(pki.ClientKey(name)))
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
		c := &http.Client{Transport: tr, Timeout: time.Minute}
		resp, err := c.Get(gw.ClientURL + supPrefix + "/cmg-blob?size=1000000")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		resp, err = c.Post(gw.ClientURL+mpPrefix+"/cmg-sink", "application/octet-stream", bytes.NewReader(upload))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
	// Quiet the gateway: no device connection, no tunnel, then two scrapes with
	// the same wire totals.
	for _, c := range e.conns {
		c.stop()
	}
	waitFor(t, "gateway 0 to be quiet", 30*time.Second, func() bool {
		a := scrape(t, e.gws[0].admin)
		if metricValue(a, "cmg_gateway_client_connections") != 0 || len(gatewayStatus(t, e.gws[0].admin).Connectors) != 0 {
			return false
		}
		b := scrape(t, e.gws[0].admin)
		return wireEgress(a) == wireEgress(b) && wireEgress(b) > 0
	})

	costClock.Add(int64(time.Hour))
	m := scrape(t, e.gws[0].admin)
	egress := wireEgress(m) // bytes sent to devices and to the site: the model's egress
	projected := egress / 3600 * (30 * 24 * 3600)
	service := projected * 2 / 1e9 // GB the 2 instances send in a month
	tiered := math.Min(service, 2)*0 + math.Max(0, math.Min(service, 5)-2)*0.10 + math.Max(0, service-5)*0.05
	if service <= 5 {
		t.Fatalf("the traffic (%.0f bytes) projects to %.2f GB for the service, under the last tier: make it larger", egress, service)
	}
	egressCost := tiered / 2
	compute := 0.5 * 720
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cmg_gateway_clients_active", []string{"window", "1h"}, devices},
		{"cmg_gateway_clients_active", []string{"window", "24h"}, devices},
		{"cmg_gateway_clients_active", []string{"window", "30d"}, devices},
		{"cmg_gateway_capacity_devices", nil, 5000},
		{"cmg_cost_egress_price_per_gigabyte", []string{"currency", "EUR"}, 0.10},
		{"cmg_cost_projected_monthly_egress_bytes", nil, projected},
		{"cmg_cost_egress_bytes_per_client_monthly", nil, projected / devices},
		{"cmg_cost_projected_monthly", []string{"component", "egress", "currency", "EUR"}, egressCost},
		{"cmg_cost_projected_monthly", []string{"component", "compute", "currency", "EUR"}, compute},
		{"cmg_cost_projected_monthly", []string{"component", "total", "currency", "EUR"}, egressCost + compute},
		{"cmg_cost_model_egress_bytes_per_client_monthly", []string{"bound", "low"}, 100e6},
		{"cmg_cost_model_egress_bytes_per_client_monthly", []string{"bound", "high"}, 300e6},
	} {
		got := metricValue(m, c.name, c.labels...)
		if math.Abs(got-c.want) > 1e-9*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	t.Logf("egress %.0f bytes in the hour → %.0f bytes a month (%.3f GB for the service), %.4f EUR egress + %.0f EUR compute",
		egress, projected, service, egressCost, compute)
}

// wireEgress is the gateway's egress on both listeners.
func wireEgress(fams map[string]*dto.MetricFamily) float64 {
	return metricValue(fams, "cmg_gateway_wire_egress_bytes_total")
}
