package gateway

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/tunnel"
)

// Status is the JSON of the gateway's /api/v1/status.
type Status struct {
	Instance   int               `json:"instance"`
	Instances  int               `json:"instances"`
	Ready      bool              `json:"ready"`
	Draining   bool              `json:"draining"`
	Connectors []ConnectorStatus `json:"connectors"`
	Routes     []RouteStatus     `json:"routes"`
}

// ConnectorStatus is one live tunnel session.
type ConnectorStatus struct {
	Name        string          `json:"name"`
	Site        string          `json:"site"`
	Transport   string          `json:"transport"`
	Remote      string          `json:"remote"`
	Version     string          `json:"version"`
	ConnectedAt time.Time       `json:"connected_at"`
	RTTSeconds  float64         `json:"rtt_seconds"`
	Streams     int             `json:"streams"`
	Draining    bool            `json:"draining"`
	Routes      []tunnel.Route  `json:"routes"`
	Health      map[string]bool `json:"role_health"`
}

// RouteStatus is one allowed role and the connectors serving it now.
type RouteStatus struct {
	RoleID     string   `json:"role_id"`
	Kind       string   `json:"kind"`
	Site       string   `json:"site"`
	Connectors []string `json:"connectors"`
}

// Status reports the instance's sessions and routes.
func (g *Gateway) Status() Status {
	st := Status{
		Instance:  g.cfg.Instance,
		Instances: g.cfg.Instances,
		Ready:     g.Ready(),
		Draining:  g.draining.Load(),
	}
	serving := map[string][]string{}
	for _, s := range g.reg.Sessions() {
		cs := ConnectorStatus{
			Name: s.Name, Site: s.Site, Transport: s.Transport, Remote: s.RemoteAddr.String(),
			Version: s.Version, ConnectedAt: s.ConnectedAt, RTTSeconds: s.RTT().Seconds(),
			Streams: s.StreamsOpen(), Draining: s.Draining(), Routes: s.Routes(), Health: map[string]bool{},
		}
		for _, r := range s.Routes() {
			cs.Health[r.RoleID] = s.Healthy(r.RoleID)
			serving[r.RoleID] = append(serving[r.RoleID], s.Name)
		}
		st.Connectors = append(st.Connectors, cs)
	}
	for id, r := range g.allow.Load().roles {
		st.Routes = append(st.Routes, RouteStatus{RoleID: id, Kind: string(r.Kind), Site: r.Site, Connectors: serving[id]})
	}
	sort.Slice(st.Routes, func(i, j int) bool { return st.Routes[i].RoleID < st.Routes[j].RoleID })
	return st
}

// routeCollector exports cmg_route_connectors{role}: for each role kind, the
// fewest live, non-draining connectors serving any allowed role of that kind
// (so one MP without a connector shows as 0 even when another MP has two).
type routeCollector struct {
	g    *Gateway
	desc *prometheus.Desc
}

func (g *Gateway) registerRouteCollector() error {
	return g.prom.Register(&routeCollector{g: g, desc: prometheus.NewDesc("cmg_route_connectors",
		"Fewest live, non-draining connectors serving an allowed role of this kind.", []string{"role"}, nil)})
}

func (c *routeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *routeCollector) Collect(ch chan<- prometheus.Metric) {
	fewest := map[tunnel.RoleKind]int{}
	for id, r := range c.g.allow.Load().roles {
		n := c.g.reg.ConnectorsFor(id)
		if cur, ok := fewest[r.Kind]; !ok || n < cur {
			fewest[r.Kind] = n
		}
	}
	for k, n := range fewest {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(k))
	}
}
