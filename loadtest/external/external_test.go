package external

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cmg-gateway/cmg/loadtest/roles"
)

func TestScrapeGateway(t *testing.T) {
	reg := prometheus.NewRegistry()
	wire := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricWireEgress, Help: "h"}, []string{"listener"})
	egress := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricEgress, Help: "h"}, []string{"peer", "role"})
	reg.MustRegister(wire, egress)
	wire.WithLabelValues("client").Add(1000)
	wire.WithLabelValues("tunnel").Add(5)
	egress.WithLabelValues("connector", "management_point").Add(300)
	egress.WithLabelValues("connector", "software_update_point").Add(200)
	egress.WithLabelValues("client", "management_point").Add(7)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	s := ScrapeGateway(context.Background(), srv.URL)
	if s.Error != "" {
		t.Fatal(s.Error)
	}
	for _, c := range []struct {
		name string
		got  *float64
		want float64
	}{{"wire client", s.WireEgressClient, 1000}, {"connector", s.EgressConnector, 500}, {"client", s.EgressClient, 7}} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.PerClientMonthly != nil {
		t.Errorf("a metric the gateway does not export: got %v, want nil", *s.PerClientMonthly)
	}
	if d := Delta(s.EgressConnector, s.WireEgressClient); d == nil || *d != 500 {
		t.Errorf("Delta: got %v", d)
	}
	if Delta(nil, s.WireEgressClient) != nil {
		t.Error("Delta of a missing value is not nil")
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if bad := ScrapeGateway(context.Background(), down.URL); bad.Error == "" || bad.WireEgressClient != nil {
		t.Errorf("a gateway that does not answer: got %+v, want an error", bad)
	}
}

func TestSiteStats(t *testing.T) {
	want := roles.Stats{WireBytesReceived: 42, Roles: map[roles.Role]roles.RoleStats{roles.RoleMP: {Requests: 3}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/roles/stats" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(want)
	}))
	defer srv.Close()
	got, err := SiteStats(context.Background(), srv.URL+"/")
	if err != nil || got.WireBytesReceived != 42 || got.Roles[roles.RoleMP].Requests != 3 {
		t.Errorf("got %+v, %v", got, err)
	}
}
