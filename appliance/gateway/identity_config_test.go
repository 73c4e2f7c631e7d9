package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/tunnel"
)

func validIdentityConfig() Config {
	c := DefaultConfig()
	c.Client.CertFile, c.Client.KeyFile = "server.pem", "server-key.pem"
	c.Tunnel.ConnectorCAs = []string{"connector-ca.pem"}
	c.Sites = []SiteConfig{{Name: "site1", Connectors: []string{"cp1"}, Roles: []RoleConfig{{ID: "1", Kind: tunnel.ManagementPoint}}}}
	return c
}

func TestCertificateSourceValidation(t *testing.T) {
	acme := func(c *Config) {
		c.Client.CertFile, c.Client.KeyFile = "", ""
		c.Client.ACME.Domains = []string{"cmg.example.com"}
		c.Client.ACME.AcceptTOS = true
	}
	tests := []struct {
		name   string
		edit   func(*Config)
		errors []string // substrings of the problems, none means valid
	}{
		{"files", func(*Config) {}, nil},
		{"no certificate at all", func(c *Config) { c.Client.CertFile, c.Client.KeyFile = "", "" },
			[]string{"client.cert_file: the server certificate file is required", "client.key_file: the server key file is required"}},
		{"acme", acme, nil},
		{"acme with tls-alpn-01", func(c *Config) { acme(c); c.Client.ACME.Challenge = ChallengeTLSALPN01 }, nil},
		{"acme and files", func(c *Config) { acme(c); c.Client.CertFile = "x.pem" }, []string{"either cert_file and key_file or acme.domains"}},
		{"acme without the terms", func(c *Config) { acme(c); c.Client.ACME.AcceptTOS = false }, []string{"client.acme.accept_tos"}},
		{"acme, every problem at once", func(c *Config) {
			acme(c)
			c.Client.ACME.Domains = append(c.Client.ACME.Domains, "bad name")
			c.Client.ACME.CA = "http://ca.example/dir"
			c.Client.ACME.Storage = ""
			c.Client.ACME.Challenge = "dns-01"
		}, []string{"client.acme.domains[1]", "client.acme.ca: must be an https", "client.acme.storage", "client.acme.challenge: must be http-01 or tls-alpn-01"}},
		{"acme http listener", func(c *Config) { acme(c); c.Client.ACME.HTTPListen = "80" }, []string{"client.acme.http_listen"}},
		{"check interval", func(c *Config) { c.Client.CertCheckInterval = time.Millisecond }, []string{"client.cert_check_interval"}},
		{"policy section", func(c *Config) { c.Policy.IdleTimeout = 0 }, []string{"policy.idle_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validIdentityConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.errors) == 0 {
				if err != nil {
					t.Fatalf("got %v, want a valid config", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tt.errors)
			}
			for _, want := range tt.errors {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("problems %q lack %q", err, want)
				}
			}
		})
	}
}
