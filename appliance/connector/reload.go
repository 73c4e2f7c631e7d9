package connector

import (
	"crypto/tls"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/cmg-gateway/cmg/configfile"
)

// certHolder is the connector's own certificate, swapped on reload: new tunnel
// dials and new connections to HTTPS roles present the renewed one, while
// tunnels and connections already up keep theirs.
type certHolder struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func newCertHolder(certFile, keyFile string) (*certHolder, error) {
	h := &certHolder{certFile: certFile, keyFile: keyFile}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *certHolder) reload() error {
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("connector: certificate: %w", err)
	}
	h.cur.Store(&c)
	return nil
}

// clientCert is a tls.Config GetClientCertificate.
func (h *certHolder) clientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return h.cur.Load(), nil
}

// Reload re-reads the connector's certificate (for new dials) and the
// configuration file. A bad file is logged and the running state stays; changes
// beyond the certificate (roles, gateway, transports) take a restart, which the
// connector says in its log rather than half-applying them.
func (c *Connector) Reload(path string) {
	if err := c.certs.reload(); err != nil {
		c.log.Error("connector: certificate reload failed; keeping the old one", "err", err)
	} else {
		c.log.Info("connector: certificate reloaded", "file", c.cfg.TLS.CertFile)
	}
	cfg := DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		c.log.Error("connector: config reload failed; keeping the running one", "err", err)
		return
	}
	if !reflect.DeepEqual(cfg, c.cfg) {
		c.log.Warn("connector: the configuration file changed; changes other than the certificate files' contents take effect at the next restart", "config", path)
	}
}
