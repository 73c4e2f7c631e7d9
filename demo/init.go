// Package demo builds and runs the embedded default setup of `cmg demo`: a dev PKI,
// two gateway instances, two connectors of one site and the simulated management
// point and software update point, all on 127.0.0.1 (DESIGN section 2). Init
// writes the files so that the same setup also runs as separate processes.
package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cmg-gateway/cmg/appliance/admin"
	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/metrics/cost"
	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/tunnel"
)

// The demo's fixed shape.
const (
	DefaultPortBase = 8000
	Instances       = 2
	Site            = "site1"
	MPRoleID        = "72057594037927939" // 0x0100000000000003, as real RoleIDs look
	SUPRoleID       = "72057594037927940"
	DPRoleID        = "72057594037927941"
	DeviceName      = "device-0001"
	host            = "127.0.0.1"
	// SiteCode is the site code of the simulated management point: the `site`
	// of the site tokens it issues and the demo site key signs for.
	SiteCode = "PS1"
)

// DeviceHashKeyFile is the gateways' shared device-hash key, in the demo
// directory.
const DeviceHashKeyFile = "device-hash.key"

// Connectors are the demo's connector names.
var Connectors = []string{"cp1", "cp2"}

// Port offsets from the port base (DESIGN section 2).
const (
	offRoles        = 80
	offDevice       = 443
	offGatewayAdmin = 1100
	offConnAdmin    = 1200
	offHTTPSTunnel  = 2124
	offTCPTunnel    = 2140
)

// Manifest is demo.json: every URL, port and file of the demo.
type Manifest struct {
	Dir            string            `json:"dir"`
	PortBase       int               `json:"port_base"`
	PKIDir         string            `json:"pki_dir"`
	CAFile         string            `json:"ca_file"`
	ClientCertFile string            `json:"client_cert_file"`
	ClientKeyFile  string            `json:"client_key_file"`
	Site           string            `json:"site"`
	Gateways       []GatewayEntry    `json:"gateways"`
	Connectors     []ConnectorEntry  `json:"connectors"`
	Roles          RolesEntry        `json:"roles"`
	RoleIDs        map[string]string `json:"role_ids"`
	ExamplePath    string            `json:"example_path"`
	ExampleCurl    string            `json:"example_curl"`
	ReadyFile      string            `json:"ready_file"`
	// SiteKeyFile signs site tokens (`cmg token issue -key`, the simulated MP's
	// CCM_STS); SitePublicKeyFile is what the gateways verify them with.
	SiteKeyFile       string `json:"site_key_file"`
	SitePublicKeyFile string `json:"site_public_key_file"`
	SiteCode          string `json:"site_code"`
	// PolicyFile is the gateways' policy (policy.file); edit it and send SIGHUP.
	PolicyFile string `json:"policy_file"`
}

// GatewayEntry is one gateway instance of the demo.
type GatewayEntry struct {
	Instance    int    `json:"instance"`
	ClientURL   string `json:"client_url"`
	AdminURL    string `json:"admin_url"`
	TunnelTCP   string `json:"tunnel_tcp"`
	TunnelHTTPS string `json:"tunnel_https"`
	Config      string `json:"config"`
}

// ConnectorEntry is one connector of the demo.
type ConnectorEntry struct {
	Name     string `json:"name"`
	AdminURL string `json:"admin_url"`
	Config   string `json:"config"`
}

// RolesEntry is the simulated roles' address.
type RolesEntry struct {
	Listen              string `json:"listen"`
	ManagementPoint     string `json:"management_point"`
	SoftwareUpdatePoint string `json:"software_update_point"`
	DistributionPoint   string `json:"distribution_point"`
}

// ManifestFile is the manifest's name in the demo directory.
const ManifestFile = "demo.json"

// Init writes the dev PKI, one config file per gateway instance and per
// connector, and demo.json into dir. An existing PKI is kept; configs and the
// manifest are rewritten.
func Init(dir string, portBase int) (*Manifest, error) {
	if portBase < 1 || portBase+offTCPTunnel+Instances > 65535 {
		return nil, fmt.Errorf("demo: port base %d puts ports out of range", portBase)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	pd := pki.Dir(filepath.Join(abs, "pki"))
	if err := ensurePKI(pd); err != nil {
		return nil, err
	}
	m := newManifest(abs, portBase, pd)
	if err := ensureSiteKey(m); err != nil {
		return nil, err
	}
	if err := ensurePolicy(m); err != nil {
		return nil, err
	}
	// Made here, not by the first gateway to start, so instances started at
	// once as processes all read the same key.
	if _, err := cost.LoadOrCreateKey(filepath.Join(abs, DeviceHashKeyFile)); err != nil {
		return nil, err
	}
	for i := range m.Gateways {
		cfg := GatewayConfig(m, i)
		if err := writeYAML(m.Gateways[i].Config, cfg); err != nil {
			return nil, err
		}
	}
	for j := range m.Connectors {
		cfg := ConnectorConfig(m, j)
		if err := writeYAML(m.Connectors[j].Config, cfg); err != nil {
			return nil, err
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(abs, ManifestFile), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return m, nil
}

func ensurePKI(pd pki.Dir) error {
	if _, err := os.Stat(pd.Path(pki.RootCert)); err == nil {
		return pki.RenewCRLs(pd, time.Now())
	}
	now := time.Now()
	if err := pki.Init(pd, pki.InitOptions{Hosts: []string{"localhost", host}, Now: now}); err != nil {
		return err
	}
	for _, c := range Connectors {
		if err := pki.IssueConnector(pd, Site, c, now); err != nil {
			return err
		}
	}
	return pki.IssueClient(pd, DeviceName, now)
}

func newManifest(dir string, base int, pd pki.Dir) *Manifest {
	m := &Manifest{
		Dir:            dir,
		PortBase:       base,
		PKIDir:         string(pd),
		CAFile:         pd.Path(pki.RootCert),
		ClientCertFile: pd.Path(pki.ClientCert(DeviceName)),
		ClientKeyFile:  pd.Path(pki.ClientKey(DeviceName)),
		Site:           Site,
		RoleIDs:        map[string]string{string(tunnel.ManagementPoint): MPRoleID, string(tunnel.SoftwareUpdatePoint): SUPRoleID, string(tunnel.DistributionPoint): DPRoleID},
		ExamplePath:    "/CCM_Proxy_MutualAuth/" + MPRoleID + "/SMS_MP/.sms_aut?MPLIST",
		ReadyFile:      filepath.Join(dir, "ready"),
	}
	identityManifest(m, dir, pd)
	rolesAddr := fmt.Sprintf("%s:%d", host, base+offRoles)
	m.Roles = RolesEntry{
		Listen:              rolesAddr,
		ManagementPoint:     "http://" + rolesAddr + "/mp",
		SoftwareUpdatePoint: "http://" + rolesAddr + "/sup",
		DistributionPoint:   "http://" + rolesAddr + "/dp",
	}
	for i := 0; i < Instances; i++ {
		m.Gateways = append(m.Gateways, GatewayEntry{
			Instance:    i,
			ClientURL:   fmt.Sprintf("https://%s:%d", host, base+offDevice+i),
			AdminURL:    fmt.Sprintf("http://%s:%d", host, base+offGatewayAdmin+i),
			TunnelTCP:   fmt.Sprintf("%s:%d", host, base+offTCPTunnel+i),
			TunnelHTTPS: fmt.Sprintf("%s:%d", host, base+offHTTPSTunnel+i),
			Config:      filepath.Join(dir, fmt.Sprintf("gateway-%d.yaml", i)),
		})
	}
	for j, n := range Connectors {
		m.Connectors = append(m.Connectors, ConnectorEntry{
			Name:     n,
			AdminURL: fmt.Sprintf("http://%s:%d", host, base+offConnAdmin+j),
			Config:   filepath.Join(dir, fmt.Sprintf("connector-%s.yaml", n)),
		})
	}
	m.ExampleCurl = fmt.Sprintf("curl --cacert %s --cert %s --key %s '%s%s'",
		m.CAFile, m.ClientCertFile, m.ClientKeyFile, m.Gateways[0].ClientURL, m.ExamplePath)
	return m
}

// GatewayConfig is the configuration of demo gateway instance i.
func GatewayConfig(m *Manifest, i int) gateway.Config {
	pd := pki.Dir(m.PKIDir)
	cfg := gateway.DefaultConfig()
	cfg.Instance = i
	cfg.Instances = Instances
	cfg.ServiceName = "localhost"
	cfg.Client.Listen = fmt.Sprintf("%s:%d", host, m.PortBase+offDevice+i)
	cfg.Client.CertFile = pd.Path(pki.GatewayCert)
	cfg.Client.KeyFile = pd.Path(pki.GatewayKey)
	cfg.Auth.Certificates = auth.CertConfig{
		Roots:         []string{pd.Path(pki.RootCert)},
		Intermediates: []string{pd.Path(pki.DeviceCACert)},
	}
	identityConfig(m, &cfg)
	cfg.Tunnel.Listen = fmt.Sprintf("%s:%d", host, m.PortBase+offTCPTunnel+i)
	cfg.Tunnel.HTTPSListen = fmt.Sprintf("%s:%d", host, m.PortBase+offHTTPSTunnel+i)
	// Nothing balances the demo's instances: stop at once, finishing requests.
	cfg.Drain = gateway.DrainConfig{Delay: 0, Grace: 10 * time.Second}
	cfg.Tunnel.ConnectorCAs = []string{pd.Path(pki.ConnectorCACert)}
	cfg.Admin = admin.Config{Listen: fmt.Sprintf("%s:%d", host, m.PortBase+offGatewayAdmin+i), Pprof: true}
	// The distinct-device sketches survive restarts. Their key also keys the
	// device hash of the access log, and is shared by the instances so that a
	// device has one hash in all their logs.
	cfg.Cost.StateFile = filepath.Join(m.Dir, fmt.Sprintf("gateway-%d-devices.state", i))
	cfg.Cost.KeyFile = filepath.Join(m.Dir, DeviceHashKeyFile)
	cfg.Cost.Prices.Instances = Instances
	cfg.Sites = []gateway.SiteConfig{{
		Name:       Site,
		Connectors: Connectors,
		Roles: []gateway.RoleConfig{
			{ID: MPRoleID, Kind: tunnel.ManagementPoint},
			{ID: SUPRoleID, Kind: tunnel.SoftwareUpdatePoint},
			{ID: DPRoleID, Kind: tunnel.DistributionPoint},
		},
		Code: SiteCode,
	}}
	cfg.Content.Cache.Dir = filepath.Join(m.Dir, fmt.Sprintf("content-cache-%d", i))
	cfg.Content.Cache.MaxBytes = 2 << 30
	return cfg
}

// ConnectorConfig is the configuration of demo connector j.
func ConnectorConfig(m *Manifest, j int) connector.Config {
	pd := pki.Dir(m.PKIDir)
	name := Connectors[j]
	cfg := connector.DefaultConfig()
	cfg.Name = name
	cfg.Site = Site
	cfg.Gateway = connector.GatewayConfig{
		Host:        host,
		Instances:   Instances,
		TCPPortBase: m.PortBase + offTCPTunnel,
		CAFiles:     []string{pd.Path(pki.RootCert)},
	}
	cfg.Gateway.HTTPSPortBase = m.PortBase + offHTTPSTunnel
	cfg.Gateway.HTTPSPort = m.PortBase + offDevice
	cfg.Gateway.Transports = connector.DefaultConfig().Gateway.Transports
	cfg.Gateway.ConnectTimeout = connector.DefaultConnectTimeout
	cfg.Gateway.RetryPreferred = tunnel.DefaultRetryPreferred
	cfg.TLS = connector.TLSConfig{CertFile: pd.Path(pki.ConnectorCert(name)), KeyFile: pd.Path(pki.ConnectorKey(name))}
	both := []string{tunnel.AuthMutual, tunnel.AuthServer}
	cfg.Roles = []connector.RoleConfig{
		{ID: MPRoleID, Kind: tunnel.ManagementPoint, URL: m.Roles.ManagementPoint, Auth: both,
			Timeout: connector.DefaultRoleTimeout, HealthURL: m.Roles.ManagementPoint + "/healthz"},
		{ID: SUPRoleID, Kind: tunnel.SoftwareUpdatePoint, URL: m.Roles.SoftwareUpdatePoint, Auth: both,
			Timeout: connector.DefaultRoleTimeout, HealthURL: m.Roles.SoftwareUpdatePoint + "/healthz"},
		{ID: DPRoleID, Kind: tunnel.DistributionPoint, URL: m.Roles.DistributionPoint, Auth: []string{tunnel.AuthServer},
			Timeout: connector.DefaultRoleTimeout, HealthURL: m.Roles.DistributionPoint + "/healthz"},
	}
	cfg.Health.Interval = 2 * time.Second
	cfg.Admin = admin.Config{Listen: fmt.Sprintf("%s:%d", host, m.PortBase+offConnAdmin+j), Pprof: true}
	return cfg
}

// Load reads demo.json from dir.
func Load(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("demo: %s: %w", ManifestFile, err)
	}
	return &m, nil
}

func writeYAML(path string, v any) error {
	data, err := configfile.Marshal(v)
	if err != nil {
		return err
	}
	header := "# Written by `cmg demo init`; run with `cmg gateway -config` or `cmg connector -config`.\n"
	return os.WriteFile(path, append([]byte(header), data...), 0o644)
}
