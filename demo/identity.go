package demo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cmg-gateway/cmg/appliance/auth"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/loadtest/roles"
	"github.com/cmg-gateway/cmg/pki"
	"github.com/cmg-gateway/cmg/sitetoken"
)

// Files of the demo's device identity, beside the dev PKI and the configs.
const (
	siteKeyFile       = "site-key.pem"
	sitePublicKeyFile = "site-key.pub.pem"
	policyFile        = "policy.yaml"
)

// identityManifest fills the manifest's device identity files.
func identityManifest(m *Manifest, dir string, pd pki.Dir) {
	m.SiteKeyFile = pd.Path(siteKeyFile)
	m.SitePublicKeyFile = pd.Path(sitePublicKeyFile)
	m.SiteCode = SiteCode
	m.PolicyFile = filepath.Join(dir, policyFile)
}

// ensureSiteKey writes the site signing key and its public key when missing.
func ensureSiteKey(m *Manifest) error {
	if _, err := os.Stat(m.SiteKeyFile); err == nil {
		return nil
	}
	key, err := sitetoken.GenerateKey()
	if err != nil {
		return err
	}
	_ = os.Remove(m.SitePublicKeyFile) // a public key without its private key is useless
	if err := sitetoken.WriteKey(m.SiteKeyFile, key); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := sitetoken.WritePublicKey(m.SitePublicKeyFile, &key.PublicKey); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// ensurePolicy writes the demo policy when there is none: an edited policy is
// kept across `cmg demo init`.
func ensurePolicy(m *Manifest) error {
	_, err := os.Stat(m.PolicyFile)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("demo: %w", err)
	}
	text := fmt.Sprintf(demoPolicy, SiteCode, MPRoleID, m.PolicyFile)
	if err := os.WriteFile(m.PolicyFile, []byte(text), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// demoPolicy admits the three kinds of device of the original product
// (policies/examples has fuller examples of each); %[1]s is the site code,
// %[2]s the management point's RoleID, %[3]s the file. It sets no per-device limits, since
// the demo's one device certificate stands for many devices in load tests.
const demoPolicy = `# The demo gateways' policy (DESIGN section 10; format in policies/README.md).
# Edit it and send SIGHUP to the gateways (or restart cmg demo) to apply;
# check it first with: cmg policy check %[3]s
version: 1
default: deny

rules:
  # PKI devices: client certificates of the dev device issuing CA.
  - name: pki-devices
    match:
      auth: certificate
      issuer: "CN=cmg dev device issuing CA,*"
    action: allow

  # Token devices register once with a bulk registration token
  # (cmg token issue -kind registration): only at the management point's
  # token service, which answers with a device token.
  - name: site-token-registration
    match:
      auth: site_token
      claims:
        site: %[1]s
        kind: registration
      path_prefix: /CCM_Proxy_MutualAuth/%[2]s/CCM_STS
    action: allow

  # Site-token devices with their device token.
  - name: site-token-devices
    match:
      auth: site_token
      claims:
        site: %[1]s
        kind: device
    action: allow

  # Content downloads (/cmg/v1/content/) with the site's content tokens.
  - name: site-content
    match:
      auth: site_token
      role: distribution_point
      claims:
        site: %[1]s
        kind: content
    action: allow

  # Azure AD joined devices, when auth.tokens.oidc is configured (the issuer,
  # audience and tenants are checked before the policy runs).
  - name: azure-ad-devices
    match:
      auth: oidc
    action: allow

# Per instance: divide the service's budget by the instance count.
egress_budget:
  bytes: 1TB
  window: 336h
  warning: 0.5
  critical: 0.9
  stop_on_critical: false
`

// identityConfig sets the gateway's device identity sections: CRL revocation
// checking from the dev PKI's CRL files (reloaded when `cmg pki revoke`
// rewrites them), the site key for site tokens, and the policy file.
func identityConfig(m *Manifest, cfg *gateway.Config) {
	pd := pki.Dir(m.PKIDir)
	cfg.Auth.Revocation = auth.DefaultRevocationConfig()
	cfg.Auth.Revocation.Enabled = true
	cfg.Auth.Revocation.Files = []string{pd.Path(pki.DeviceCRL), pd.Path(pki.RootCRL)}
	cfg.Auth.Revocation.FetchDistributionPoints = false
	cfg.Auth.Tokens.Site = auth.SiteTokenConfig{Keys: []auth.SiteKeyConfig{{Site: SiteCode, File: m.SitePublicKeyFile}}}
	cfg.Policy.File = m.PolicyFile
}

// SiteTokenIssuer is the simulated management point's CCM_STS issuer for the
// demo: real site device tokens signed by the demo site key.
func SiteTokenIssuer(m *Manifest) (roles.TokenIssuer, error) {
	return roles.LoadSiteTokenIssuer(m.SiteKeyFile, m.SiteCode)
}

// SiteIssuer is the demo site's token issuer (content tokens carry the site code).
func SiteIssuer(m *Manifest) (*sitetoken.Issuer, error) {
	key, err := sitetoken.LoadKey(m.SiteKeyFile)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return sitetoken.NewIssuer(key, "", m.SiteCode)
}
