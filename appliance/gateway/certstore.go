package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// certSource serves the gateway's certificate to TLS handshakes: from files
// (certStore) or from an ACME CA (acmeCerts).
type certSource interface {
	get(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// notAfter is the served certificate's expiry (zero while there is none).
	notAfter() time.Time
}

// certStore holds a certificate loaded from files and swaps it on reload, so a
// renewed certificate is served to new handshakes while connections already
// up keep theirs: nothing is dropped.
//
// Changes are found by polling the files' stamps (size, mtime, inode and
// device, following symlinks) rather than with fsnotify: a stat every few
// seconds costs nothing, needs no dependency, and sees every way certificates
// get replaced, including the ones inotify watches of the files miss: an
// atomic rename over the file, and Kubernetes secret volumes, which swap a
// `..data` symlink in the parent directory.
type certStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]

	mu     sync.Mutex // serializes reloads; guards the stamps
	stamp  [2]fileStamp
	failed [2]fileStamp // the version that last failed to load, not retried
}

func newCertStore(certFile, keyFile string) (*certStore, error) {
	s := &certStore{certFile: certFile, keyFile: keyFile}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload reads the files again; on error the old certificate stays.
func (s *certStore) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *certStore) reloadLocked() error {
	// The stamps are taken before reading, so a write racing the read is seen
	// as a change at the next check.
	st := [2]fileStamp{stampFile(s.certFile), stampFile(s.keyFile)}
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("gateway: certificate %s: %w", s.certFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("gateway: certificate %s: %w", s.certFile, err)
		}
	}
	s.cur.Store(&c)
	s.stamp = st
	return nil
}

// reloadIfChanged reloads when a file changed; it reports whether it tried.
// A failed load (say the certificate was replaced and the key not yet) keeps
// the old certificate; the same broken version is not tried again, the next
// change is.
func (s *certStore) reloadIfChanged() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := [2]fileStamp{stampFile(s.certFile), stampFile(s.keyFile)}
	if now == s.stamp || now == s.failed {
		return false, nil
	}
	err := s.reloadLocked()
	if err != nil {
		s.failed = now
	}
	return true, err
}

func (s *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }

func (s *certStore) notAfter() time.Time { return s.cur.Load().Leaf.NotAfter }

// fileStamp identifies a version of a file.
type fileStamp struct {
	mod       time.Time
	size      int64
	dev, ino  uint64
	statError bool
}

func stampFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{statError: true}
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(sys.Dev), sys.Ino
	}
	return st
}

// watchCerts reloads the file certificates that changed, every interval,
// until ctx is done.
func (g *Gateway) watchCerts(ctx context.Context, interval time.Duration) {
	stores := g.fileCertStores()
	if len(stores) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range stores {
			tried, err := s.reloadIfChanged()
			switch {
			case !tried:
			case err != nil:
				g.log.Error("gateway: changed certificate not loaded; keeping the old one", "cert", s.certFile, "err", err)
				g.m.reloads.WithLabelValues("certificate", "failure").Inc()
			default:
				g.log.Info("gateway: certificate reloaded after a change", "cert", s.certFile, "not_after", s.notAfter())
				g.m.reloads.WithLabelValues("certificate", "success").Inc()
			}
		}
	}
}

// fileCertStores are the certificates served from files: the client
// listener's (unless ACME) and the tunnel's own, when it has one.
func (g *Gateway) fileCertStores() []*certStore {
	var out []*certStore
	if s, ok := g.cert.(*certStore); ok {
		out = append(out, s)
	}
	if s, ok := g.tunnelCert.(*certStore); ok && s != g.cert {
		out = append(out, s)
	}
	return out
}
