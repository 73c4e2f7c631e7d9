package roles

import (
	"fmt"
	"time"

	"github.com/cmg-gateway/cmg/configfile"
)

// Config configures the simulated site roles. Sizes are bytes; each default cites the
// row of client-traffic.md it comes from (see README.md).
type Config struct {
	// Seed makes every generated reply deterministic. Zero is a valid seed.
	Seed uint64 `yaml:"seed"`
	// Site names the simulated site, as the replies show it.
	Site SiteConfig `yaml:"site"`
	// TLS, when CertFile and KeyFile are set, makes Run serve HTTPS.
	TLS TLSConfig `yaml:"tls"`
	// Sizes of the generated replies.
	Sizes Sizes `yaml:"sizes"`
	// DP is the simulated distribution point's catalog (under /dp/).
	DP DPConfig `yaml:"distribution_point"`

	// ReadHeaderTimeout bounds reading a request's header. Zero means no limit.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Zero means no limit.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownGrace is how long Run waits for requests in flight once its context is
	// done, before it closes the remaining connections.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// MaxDelay caps ?cmg-delay=, so a test cannot park a handler forever.
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxMessageBytes caps a CCM message body, compressed and decompressed.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxSOAPBytes caps a SOAP request body read into memory.
	MaxSOAPBytes int64 `yaml:"max_soap_bytes"`
	// MaxBITSSessions caps open BITS upload sessions; older ones are dropped first.
	MaxBITSSessions int `yaml:"max_bits_sessions"`
	// BITSSessionTTL drops a BITS upload session with no fragment for this long.
	BITSSessionTTL time.Duration `yaml:"bits_session_ttl"`
}

// SiteConfig is the identity the simulated site shows in its replies.
type SiteConfig struct {
	// Code is the three-character site code (SMS:<Code> in policy sources).
	Code string `yaml:"code"`
	// MPName is the management point's FQDN (the MP list, message headers, PolicyLocation).
	MPName string `yaml:"mp_name"`
	// SUPURL is the software update point URL handed out in WSUS location replies.
	SUPURL string `yaml:"sup_url"`
	// Version is the MP build number shown in the MP list (9128 is 2403).
	Version int `yaml:"version"`
}

// TLSConfig makes Run serve HTTPS, as an HTTPS-mode MP behind the connector does.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, verifies client certificates against these roots.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses connections without a verified client certificate
	// (the connector presents its client-auth certificate to an HTTPS MP).
	RequireClientCert bool `yaml:"require_client_cert"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// SizeRange is a distribution of document sizes: each document (keyed by its ID) gets
// a deterministic size in [Min, Max] whose mean over many documents is Typical.
type SizeRange struct {
	Min     int `yaml:"min"`
	Typical int `yaml:"typical"`
	Max     int `yaml:"max"`
}

// Sizes are the sizes of the generated replies, in bytes on the wire (HTTP body).
// The CCM message replies are zlib-compressed UTF-16 XML; their sizes are reached
// within a few percent. Everything else is exact.
type Sizes struct {
	// MP, client-traffic.md section 1 and section 6.
	RegistrationReply          int       `yaml:"registration_reply"`           // ~2 KB [D]
	LocationReply              int       `yaml:"location_reply"`               // 2-3 KB [D/E]
	WSUSLocationReply          int       `yaml:"wsus_location_reply"`          // 2.5 KB, content/WSUS location row
	PolicyAssignmentsUnchanged int       `yaml:"policy_assignments_unchanged"` // <=2.6 KB (model value)
	PolicyAssignmentsFull      int       `yaml:"policy_assignments_full"`      // ~24 KB for 150 assignments
	PolicyBody                 SizeRange `yaml:"policy_body"`                  // 5-100 KB, 30 KB in the model
	CIDocument                 SizeRange `yaml:"ci_document"`                  // 10-100 KB, 40 KB in the model
	CCMTokenReply              int       `yaml:"ccm_token_reply"`              // 1,566 B sample [S, AAD]
	NotificationReply          int       `yaml:"notification_reply"`           // 1.0 KB renewal [E]
	// SUP, client-traffic.md section 2 and section 6 (delta scan ~15 KB down in 4 calls).
	GetConfigReply           int       `yaml:"get_config_reply"`
	AuthorizationCookieReply int       `yaml:"authorization_cookie_reply"`
	GetCookieReply           int       `yaml:"get_cookie_reply"`
	RegisterComputerReply    int       `yaml:"register_computer_reply"`
	SyncUpdatesDeltaReply    int       `yaml:"sync_updates_delta_reply"`
	SyncUpdatesDriverReply   int       `yaml:"sync_updates_driver_reply"`
	SyncUpdatesFirstReply    int       `yaml:"sync_updates_first_reply"`
	ExtendedInfoPerRevision  int       `yaml:"extended_info_per_revision"`
	FileLocationsPerFile     int       `yaml:"file_locations_per_file"`
	ReportEventBatchReply    int       `yaml:"report_event_batch_reply"`
	SelfUpdateCab            int       `yaml:"self_update_cab"`
	Content                  SizeRange `yaml:"content"`
}

// DefaultConfig returns the configuration `cmg loadtest roles` and the demo run with.
func DefaultConfig() Config {
	return Config{
		Seed: 1,
		Site: SiteConfig{
			Code:    "PS1",
			MPName:  "mp01.corp.example.com",
			SUPURL:  "http://sup01.corp.example.com:8530",
			Version: 9128,
		},
		Sizes:             DefaultSizes(),
		DP:                DefaultDP(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownGrace:     10 * time.Second,
		MaxDelay:          10 * time.Minute,
		MaxMessageBytes:   16 << 20,
		MaxSOAPBytes:      64 << 20,
		MaxBITSSessions:   100000,
		BITSSessionTTL:    time.Hour,
	}
}

// DefaultSizes are the sizes of client-traffic.md section 6 (see README.md).
func DefaultSizes() Sizes {
	return Sizes{
		RegistrationReply:          2000,
		LocationReply:              2500,
		WSUSLocationReply:          2500,
		PolicyAssignmentsUnchanged: 2600,
		PolicyAssignmentsFull:      24000,
		PolicyBody:                 SizeRange{Min: 5000, Typical: 30000, Max: 100000},
		CIDocument:                 SizeRange{Min: 10000, Typical: 40000, Max: 100000},
		CCMTokenReply:              1566,
		NotificationReply:          1000,
		GetConfigReply:             4000,
		AuthorizationCookieReply:   800,
		GetCookieReply:             1000,
		RegisterComputerReply:      400,
		SyncUpdatesDeltaReply:      6000,
		SyncUpdatesDriverReply:     2000,
		SyncUpdatesFirstReply:      400000,
		ExtendedInfoPerRevision:    2000,
		FileLocationsPerFile:       300,
		ReportEventBatchReply:      500,
		SelfUpdateCab:              12000,
		Content:                    SizeRange{Min: 100000, Typical: 2000000, Max: 50000000},
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var p configfile.Problems
	if len(c.Site.Code) != 3 {
		p.Addf("site.code", "must be 3 characters, got %q", c.Site.Code)
	}
	if c.Site.MPName == "" {
		p.Addf("site.mp_name", "must not be empty")
	}
	if c.Site.SUPURL == "" {
		p.Addf("site.sup_url", "must not be empty")
	}
	if c.Site.Version <= 0 {
		p.Addf("site.version", "must be positive, got %d", c.Site.Version)
	}
	if c.TLS.Enabled() && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		p.Addf("tls", "cert_file and key_file must be set together")
	}
	if c.TLS.RequireClientCert && c.TLS.ClientCAFile == "" {
		p.Addf("tls.require_client_cert", "needs tls.client_ca_file")
	}
	if c.TLS.ClientCAFile != "" && !c.TLS.Enabled() {
		p.Addf("tls.client_ca_file", "needs tls.cert_file and tls.key_file")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"idle_timeout", c.IdleTimeout},
		{"shutdown_grace", c.ShutdownGrace}, {"max_delay", c.MaxDelay},
	} {
		if d.v < 0 {
			p.Addf(d.key, "must not be negative, got %s", d.v)
		}
	}
	if c.BITSSessionTTL <= 0 {
		p.Addf("bits_session_ttl", "must be positive, got %s", c.BITSSessionTTL)
	}
	if c.MaxMessageBytes < 1024 {
		p.Addf("max_message_bytes", "must be at least 1024, got %d", c.MaxMessageBytes)
	}
	if c.MaxSOAPBytes < 1024 {
		p.Addf("max_soap_bytes", "must be at least 1024, got %d", c.MaxSOAPBytes)
	}
	if c.MaxBITSSessions < 1 {
		p.Addf("max_bits_sessions", "must be at least 1, got %d", c.MaxBITSSessions)
	}
	c.Sizes.validate(&p)
	c.DP.validate(&p)
	return p.Err()
}

// minReply is the smallest reply size accepted: every reply has a fixed skeleton
// (SOAP envelope, CCM message header) that a smaller size could not hold.
const minReply = 256

func (s Sizes) validate(p *configfile.Problems) {
	for _, f := range []struct {
		key string
		v   int
	}{
		{"registration_reply", s.RegistrationReply}, {"location_reply", s.LocationReply},
		{"wsus_location_reply", s.WSUSLocationReply},
		{"policy_assignments_unchanged", s.PolicyAssignmentsUnchanged},
		{"policy_assignments_full", s.PolicyAssignmentsFull},
		{"ccm_token_reply", s.CCMTokenReply}, {"notification_reply", s.NotificationReply},
		{"get_config_reply", s.GetConfigReply}, {"authorization_cookie_reply", s.AuthorizationCookieReply},
		{"get_cookie_reply", s.GetCookieReply}, {"register_computer_reply", s.RegisterComputerReply},
		{"sync_updates_delta_reply", s.SyncUpdatesDeltaReply},
		{"sync_updates_driver_reply", s.SyncUpdatesDriverReply},
		{"sync_updates_first_reply", s.SyncUpdatesFirstReply},
		{"report_event_batch_reply", s.ReportEventBatchReply},
	} {
		if f.v < minReply || f.v > 64<<20 {
			p.Addf("sizes."+f.key, "must be between %d and %d bytes, got %d", minReply, 64<<20, f.v)
		}
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"extended_info_per_revision", s.ExtendedInfoPerRevision},
		{"file_locations_per_file", s.FileLocationsPerFile},
		{"self_update_cab", s.SelfUpdateCab},
	} {
		if f.v < 64 || f.v > 64<<20 {
			p.Addf("sizes."+f.key, "must be between 64 and %d bytes, got %d", 64<<20, f.v)
		}
	}
	for _, f := range []struct {
		key string
		r   SizeRange
		min int
	}{
		{"policy_body", s.PolicyBody, minReply}, {"ci_document", s.CIDocument, minReply},
		{"content", s.Content, 1},
	} {
		if err := f.r.check(f.min); err != nil {
			p.Addf("sizes."+f.key, "%v", err)
		}
	}
}

func (r SizeRange) check(min int) error {
	if r.Min < min || r.Min > r.Typical || r.Typical > r.Max || (r.Typical == r.Max && r.Min != r.Max) {
		return fmt.Errorf("need %d <= min <= typical < max (or all equal), got min %d, typical %d, max %d", min, r.Min, r.Typical, r.Max)
	}
	if r.Max > 1<<40 {
		return fmt.Errorf("max must be at most 1 TiB, got %d", r.Max)
	}
	return nil
}
