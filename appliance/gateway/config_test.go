package gateway

import (
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/tunnel"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Client.CertFile, c.Client.KeyFile = "gw.pem", "gw-key.pem"
	c.Tunnel.ConnectorCAs = []string{"ca.pem"}
	c.Sites = []SiteConfig{{Name: "site1", Connectors: []string{"cp1"},
		Roles: []RoleConfig{{ID: "72057594037927939", Kind: tunnel.ManagementPoint}}}}
	return c
}

// TestObservabilitySectionsAreValidated checks the cost, tracing and profiling
// sections report their problems under their own keys, all at once.
func TestObservabilitySectionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"defaults are valid", func(*Config) {}, nil},
		{"tracing on", func(c *Config) { c.Tracing.Endpoint = "http://127.0.0.1:4317" }, nil},
		{"bad tracing", func(c *Config) { c.Tracing.Endpoint = "collector:4317"; c.Tracing.SampleRatio = 2 },
			[]string{"tracing.endpoint", "tracing.sample_ratio"}},
		{"bad profiling", func(c *Config) { c.Profiling.ServerURL = "ftp://x" }, []string{"profiling.server_url"}},
		{"bad cost", func(c *Config) { c.Cost.SaveInterval = 0 }, []string{"cost.save_interval"}},
		{"all at once", func(c *Config) {
			c.Tracing.Protocol = "zipkin"
			c.Profiling.UploadInterval = 0
			c.Cost.Prices.Currency = "dollars"
		}, []string{"cost.prices.currency", "tracing.protocol", "profiling.upload_interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			var got []string
			if ps, ok := c.Validate().(*configfile.Problems); ok {
				for _, p := range ps.List {
					got = append(got, p.Path)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got problems %v, want %v", got, tc.want)
			}
		})
	}
}
