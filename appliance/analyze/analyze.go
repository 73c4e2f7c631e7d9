// Package analyze is the connection analyzer of `cmg analyze` (DESIGN section 2):
// from the connector's host and with the connector's own configuration, it checks
// every step between the connector and each gateway instance — DNS, TCP to each
// tunnel port, the proxy, TLS (the certificate seen and why it is or is not
// trusted), whether the gateway accepts the connector's certificate, the hello,
// and a round trip to every role through the gateway — and reports each step as
// pass or fail with the fix.
//
// The round trip needs no device credential: the analyzer opens a tunnel session
// marked as an analyzer's (tunnel.CapAnalyze), which the gateway authenticates
// by the connector's certificate and allow-list exactly like the connector's own
// tunnel but never registers; the gateway then sends one probe request per
// accepted route over it, and the analyzer serves them with the connector's own
// role proxy. What it proves: this host, with this configuration, reaches every
// instance over the transport shown, is accepted, and the roles answer requests
// that the gateway sends through the tunnel. What it does not prove: device
// authentication and policies on the gateway, which no connector credential can
// exercise honestly.
package analyze

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/tunnel"
)

// Check is one row of the report.
type Check struct {
	// Instance is the gateway instance, or -1 for checks of the whole service.
	Instance int    `json:"instance"`
	Name     string `json:"check"`
	// Result is PASS, FAIL or SKIP (not run because an earlier step failed).
	Result string `json:"result"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// The results of a check.
const (
	Pass = "PASS"
	Fail = "FAIL"
	Skip = "SKIP"
)

// Report is the analyzer's findings.
type Report struct {
	Connector string  `json:"connector"`
	Site      string  `json:"site"`
	Host      string  `json:"host"`
	Checks    []Check `json:"checks"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Result == Fail {
			return true
		}
	}
	return false
}

// Options tune a run.
type Options struct {
	// Timeout bounds each instance's session (TLS, hello and probes). Zero
	// means 30 s.
	Timeout time.Duration
	// Getenv reads HTTPS_PROXY and NO_PROXY; nil means os.Getenv.
	Getenv func(string) string
	Logger *slog.Logger
}

// Run analyzes the connector configuration cfg. It returns an error only when
// the configuration or the connector's certificate cannot be loaded at all.
func Run(ctx context.Context, cfg connector.Config, opts Options) (*Report, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The connector as it would run, but never started: its role proxy serves
	// the probes, its TLS configuration and ladder are what is checked.
	c, err := connector.New(cfg, connector.Options{Logger: opts.Logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	a := &analyzer{cfg: cfg, c: c, opts: opts}
	rep := &Report{Connector: cfg.Name, Site: cfg.Site, Host: cfg.Gateway.Host}
	rep.Checks = append(rep.Checks, a.dns(ctx))
	rows := make([][]Check, cfg.Gateway.Instances)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i] = a.instance(ctx, i)
		}()
	}
	wg.Wait()
	for _, r := range rows {
		rep.Checks = append(rep.Checks, r...)
	}
	return rep, nil
}

type analyzer struct {
	cfg  connector.Config
	c    *connector.Connector
	opts Options
}

func (a *analyzer) dns(ctx context.Context) Check {
	host := a.cfg.Gateway.Host
	ck := Check{Instance: -1, Name: "dns " + host}
	if net.ParseIP(host) != nil {
		ck.Result, ck.Detail = Pass, "an IP address; nothing to resolve"
		return ck
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(lctx, host)
	if err != nil {
		ck.Result, ck.Detail = Fail, err.Error()
		ck.Fix = "check gateway.host in the connector configuration and this host's DNS: the gateway's name must resolve here (only a proxy can reach a name this host cannot resolve)"
		return ck
	}
	ck.Result, ck.Detail = Pass, strings.Join(addrs, ", ")
	return ck
}

// instance runs every check against gateway instance i.
func (a *analyzer) instance(ctx context.Context, i int) []Check {
	gw := a.cfg.Gateway
	var out []Check
	// The ladder's rungs that can carry a session, in order.
	var usable []tunnel.Transport
	rec := &tlsRecorder{}
	ladder := gw.Ladder(rec.config(a.c.GatewayTLS()), a.opts.Getenv)
	for _, t := range ladder {
		var ck Check
		switch t.Name() {
		case tunnel.TransportTCPTLS:
			ck = a.tcp(ctx, i, t.Name(), gw.TCPPortBase+i, "TCP-TLS tunnel port")
		case tunnel.TransportHTTPS:
			ck = a.tcp(ctx, i, t.Name(), gw.HTTPSPortFor(i), "HTTPS tunnel port")
		case tunnel.TransportProxy:
			ck = a.proxy(ctx, i)
		}
		out = append(out, ck)
		if ck.Result == Pass {
			usable = append(usable, t)
		}
	}
	if !gw.ProxyConfigured(a.opts.Getenv) && len(usable) == 0 {
		out = append(out, Check{Instance: i, Name: "https_proxy", Result: Skip,
			Detail: "no proxy configured (gateway.proxy.url) and HTTPS_PROXY is not set"})
	}
	rest := []string{"tls", "mtls", "hello"}
	for _, r := range a.cfg.Roles {
		rest = append(rest, roleCheckName(r))
	}
	if len(usable) == 0 {
		for _, n := range rest {
			out = append(out, Check{Instance: i, Name: n, Result: Skip, Detail: "no transport reached the instance"})
		}
		return out
	}
	t := usable[0]
	sctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	res, err := tunnel.Analyze(sctx, t, i, a.c.Hello(), a.c.StreamHandler(), a.opts.Logger)
	out = append(out, a.tlsCheck(i, t.Name(), rec, err))
	if out[len(out)-1].Result != Pass {
		return append(out, skipAll(i, rest[1:], "TLS with the gateway failed")...)
	}
	mtls := a.mtlsCheck(i, res, err)
	out = append(out, mtls)
	if mtls.Result != Pass {
		return append(out, skipAll(i, rest[2:], "the gateway did not accept the connector's certificate")...)
	}
	hello := a.helloCheck(i, t.Name(), res, err)
	out = append(out, hello...)
	if hello[0].Result != Pass {
		return append(out, skipAll(i, rest[3:], "the gateway refused the connector")...)
	}
	return append(out, a.roleChecks(ctx, i, t.Name(), res, err)...)
}

func skipAll(i int, names []string, why string) []Check {
	var out []Check
	for _, n := range names {
		out = append(out, Check{Instance: i, Name: n, Result: Skip, Detail: why})
	}
	return out
}

func roleCheckName(r connector.RoleConfig) string { return "role " + string(r.Kind) + " " + r.ID }

// tcp checks a TCP connect to one tunnel port.
func (a *analyzer) tcp(ctx context.Context, i int, transport string, port int, what string) Check {
	addr := net.JoinHostPort(a.cfg.Gateway.Host, strconv.Itoa(port))
	ck := Check{Instance: i, Name: transport + " tcp " + addr}
	d := net.Dialer{Timeout: a.cfg.Gateway.ConnectTimeout}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		ck.Result = Fail
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			ck.Detail = "connection refused: nothing listens there, or a firewall rejects it"
		case isTimeout(err):
			ck.Detail = fmt.Sprintf("no answer within %v: a firewall drops the packets", a.cfg.Gateway.ConnectTimeout)
		default:
			ck.Detail = err.Error()
		}
		ck.Fix = fmt.Sprintf("allow outbound TCP to %s (instance %d's %s) in the site's firewall, and check that gateway instance %d is running and listens there; until then the connector falls back to the next transport", addr, i, what, i)
		return ck
	}
	conn.Close()
	ck.Result, ck.Detail = Pass, fmt.Sprintf("connected in %v", time.Since(start).Round(10*time.Microsecond))
	return ck
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// proxy checks that the proxy lets a CONNECT to instance i's HTTPS port through.
func (a *analyzer) proxy(ctx context.Context, i int) Check {
	gw := a.cfg.Gateway
	target := net.JoinHostPort(gw.Host, strconv.Itoa(gw.HTTPSPortFor(i)))
	ck := Check{Instance: i, Name: "https_proxy connect " + target}
	p, err := gw.ProxyFor(target, a.opts.Getenv)
	if err != nil {
		ck.Result, ck.Detail = Fail, err.Error()
		ck.Fix = "fix gateway.proxy (url, username, password_file) or HTTPS_PROXY"
		return ck
	}
	if p == nil {
		ck.Result, ck.Detail = Skip, "NO_PROXY excludes "+gw.Host
		return ck
	}
	ck.Name += " via " + p.String()
	dctx, cancel := context.WithTimeout(ctx, gw.ConnectTimeout+5*time.Second)
	defer cancel()
	d := net.Dialer{Timeout: gw.ConnectTimeout}
	conn, err := tunnel.DialConnect(dctx, d.DialContext, p, target)
	if err != nil {
		ck.Result, ck.Detail = Fail, err.Error()
		var pe *tunnel.ProxyError
		switch {
		case errors.As(err, &pe) && pe.Credentials():
			ck.Fix = "the proxy refused the credentials: check gateway.proxy.username and the password in gateway.proxy.password_file (or the user:password in HTTPS_PROXY)"
		case errors.As(err, &pe):
			ck.Fix = fmt.Sprintf("the proxy does not allow CONNECT to %s: ask its administrators to allow it (squid: an http_access rule for CONNECT to that port; tinyproxy: ConnectPort %d)", target, gw.HTTPSPortFor(i))
		default:
			ck.Fix = "the proxy cannot be reached: check gateway.proxy.url (or HTTPS_PROXY) and that outbound TCP to the proxy is allowed"
		}
		return ck
	}
	conn.Close()
	ck.Result, ck.Detail = Pass, "CONNECT answered 200"
	return ck
}

// tlsRecorder verifies the gateway's certificate itself, so that it can say
// what it saw and why it is or is not trusted.
type tlsRecorder struct {
	mu     sync.Mutex
	chain  []*x509.Certificate
	err    error
	name   string
	source string
}

// config is base with verification done by the recorder.
func (r *tlsRecorder) config(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	roots := cfg.RootCAs
	r.source = "the system roots"
	if roots != nil {
		r.source = "gateway.ca_files"
	}
	r.name = cfg.ServerName
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), DNSName: cfg.ServerName}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		var err error
		if len(cs.PeerCertificates) == 0 {
			err = errors.New("the gateway sent no certificate")
		} else {
			_, err = cs.PeerCertificates[0].Verify(opts)
		}
		r.mu.Lock()
		r.chain, r.err = cs.PeerCertificates, err
		r.mu.Unlock()
		return err
	}
	return cfg
}

func (a *analyzer) tlsCheck(i int, transport string, rec *tlsRecorder, err error) Check {
	ck := Check{Instance: i, Name: "tls (" + transport + ")"}
	rec.mu.Lock()
	chain, verr := rec.chain, rec.err
	rec.mu.Unlock()
	if chain == nil {
		ck.Result = Fail
		if err == nil {
			err = errors.New("no certificate seen")
		}
		ck.Detail = "no TLS handshake: " + err.Error()
		ck.Fix = "the port answers but not with TLS from a cmg gateway: check the ports in the connector configuration (tcp_port_base, https_port_base, https_port), and that no TLS-inspecting proxy or other service is in the way"
		return ck
	}
	leaf := chain[0]
	seen := fmt.Sprintf("certificate %q issued by %q, names %s, valid until %s",
		leaf.Subject.String(), leaf.Issuer.String(), certNames(leaf), leaf.NotAfter.UTC().Format(time.DateOnly))
	if verr != nil {
		ck.Result = Fail
		var ua x509.UnknownAuthorityError
		var he x509.HostnameError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(verr, &ua):
			ck.Detail = seen + ": not trusted, its issuer is not among " + rec.source
			ck.Fix = fmt.Sprintf("add the CA that issued the gateway's certificate (%q) to gateway.ca_files in the connector configuration, or give the gateway a certificate from a CA listed there", leaf.Issuer.String())
		case errors.As(verr, &he):
			ck.Detail = seen + ": not valid for " + strconv.Quote(rec.name)
			ck.Fix = fmt.Sprintf("the connector expects the name %q (gateway.server_name, else gateway.host): set it to one of the certificate's names, or reissue the gateway's certificate for it", rec.name)
		case errors.As(verr, &ci) && ci.Reason == x509.Expired:
			ck.Detail = seen + ": expired or not yet valid (" + verr.Error() + ")"
			ck.Fix = "renew the gateway's certificate (and check this host's clock)"
		default:
			ck.Detail = seen + ": " + verr.Error()
			ck.Fix = "give the gateway a certificate that chains to a CA in gateway.ca_files"
		}
		return ck
	}
	ck.Result, ck.Detail = Pass, seen+": trusted ("+rec.source+")"
	return ck
}

func certNames(c *x509.Certificate) string {
	var n []string
	n = append(n, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		n = append(n, ip.String())
	}
	if len(n) == 0 {
		return "none"
	}
	return "[" + strings.Join(n, " ") + "]"
}

// mtlsCheck: TLS 1.3 servers reject a client certificate after the handshake,
// so the verdict shows on the first read (the ack).
func (a *analyzer) mtlsCheck(i int, res *tunnel.AnalyzeResult, err error) Check {
	ck := Check{Instance: i, Name: "mtls"}
	subject := "the connector's certificate"
	if leaf := connectorLeaf(a.c.GatewayTLS()); leaf != nil {
		subject = fmt.Sprintf("certificate %q (issuer %q)", leaf.Subject.String(), leaf.Issuer.String())
	}
	if res == nil || (res.Ack == nil && err != nil) {
		msg := "no answer"
		if err != nil {
			msg = err.Error()
		}
		if strings.Contains(msg, "remote error: tls:") || strings.Contains(msg, "certificate") {
			ck.Result, ck.Detail = Fail, "the gateway rejected "+subject+": "+msg
			ck.Fix = "the connector's certificate must chain to a CA in the gateway's tunnel.connector_cas and carry the SAN URI cmg://" + a.cfg.Site + "/" + a.cfg.Name + ": issue it from the connector CA (cmg pki issue connector) or add its CA to tunnel.connector_cas"
			return ck
		}
		ck.Result, ck.Detail = Fail, "the session ended before the gateway answered: "+msg
		ck.Fix = "check the gateway's log for this connection; a proxy or load balancer may cut it"
		return ck
	}
	ck.Result, ck.Detail = Pass, "the gateway accepted "+subject
	return ck
}

func (a *analyzer) helloCheck(i int, transport string, res *tunnel.AnalyzeResult, err error) []Check {
	ck := Check{Instance: i, Name: "hello"}
	ack := res.Ack
	if ack.Error != "" {
		ck.Result, ck.Detail = Fail, "the gateway refused the connector: "+ack.Error
		ck.Fix = fmt.Sprintf("add %q to the connectors of site %q in the gateway configuration (sites[].connectors) on every instance, then reload the gateways (SIGHUP)", a.cfg.Name, a.cfg.Site)
		return []Check{ck}
	}
	ck.Result = Pass
	ck.Detail = fmt.Sprintf("accepted over %s by instance %d of %d; %d of %d routes accepted", transport, ack.Instance, ack.Instances,
		len(ack.Accepted), len(ack.Accepted)+len(ack.Refused))
	out := []Check{ck}
	if ack.Instance != i || ack.Instances != a.cfg.Gateway.Instances {
		out = append(out, Check{Instance: i, Name: "instance", Result: Fail,
			Detail: fmt.Sprintf("dialed instance %d of %d, answered by instance %d of %d", i, a.cfg.Gateway.Instances, ack.Instance, ack.Instances),
			Fix:    "gateway.instances and the ports must match the gateway service: each instance's tunnel ports must reach that instance, not a load-balanced pool"})
	}
	return out
}

func (a *analyzer) roleChecks(ctx context.Context, i int, transport string, res *tunnel.AnalyzeResult, err error) []Check {
	refused := map[string]string{}
	for _, r := range res.Ack.Refused {
		refused[r.RoleID] = r.Reason
	}
	probes := map[string]tunnel.ProbeResult{}
	for _, p := range res.Probes {
		probes[p.RoleID] = p
	}
	var out []Check
	for _, r := range a.cfg.Roles {
		ck := Check{Instance: i, Name: roleCheckName(r)}
		if why, ok := refused[r.ID]; ok {
			ck.Result, ck.Detail = Fail, "the gateway refused the route: "+why
			ck.Fix = fmt.Sprintf("list role %s (kind %s) under site %q in the gateway configuration's sites[].roles, or fix roles[].id/kind in the connector configuration", r.ID, r.Kind, a.cfg.Site)
			out = append(out, ck)
			continue
		}
		p, ok := probes[r.ID]
		switch {
		case !ok:
			ck.Result = Fail
			ck.Detail = "no probe result from the gateway"
			if err != nil {
				ck.Detail += ": " + err.Error()
			}
			ck.Fix = "the session ended early: check the gateway's log; a proxy or load balancer may cut long connections"
		case p.OK():
			ck.Result = Pass
			ck.Detail = fmt.Sprintf("GET %s answered %d by the role in %s, through the gateway over %s", p.Path, p.Status,
				time.Duration(p.Duration*float64(time.Second)).Round(100*time.Microsecond), transport)
		default:
			ck.Result = Fail
			what := p.Error
			if p.Reason != "" {
				what = fmt.Sprintf("the connector answered %d %s: the role was not reached", p.Status, p.Reason)
			}
			ck.Detail = fmt.Sprintf("GET %s: %s", p.Path, what)
			if direct := directCheck(ctx, r); direct != "" {
				ck.Detail += "; from this host: " + direct
			}
			ck.Fix = fmt.Sprintf("start the role, or fix its URL (%s) in the connector configuration: the connector must reach it", r.URL)
		}
		out = append(out, ck)
	}
	return out
}

// directCheck requests the role's probe path from this host, to say why the
// role was not reached.
func directCheck(ctx context.Context, r connector.RoleConfig) string {
	u := strings.TrimSuffix(r.URL, "/") + "/" + tunnel.ProbePath(r.Kind)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return "answered " + resp.Status
}

// connectorLeaf is the certificate the connector presents to the gateway, from
// its static list or its (reloadable) GetClientCertificate.
func connectorLeaf(c *tls.Config) *x509.Certificate {
	var cert *tls.Certificate
	switch {
	case len(c.Certificates) > 0:
		cert = &c.Certificates[0]
	case c.GetClientCertificate != nil:
		cert, _ = c.GetClientCertificate(&tls.CertificateRequestInfo{})
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	if cert.Leaf != nil {
		return cert.Leaf
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
