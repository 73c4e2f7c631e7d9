package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// keySet is an OIDC issuer's signing keys, from a JWKS URL or file. Lookups of
// known keys never wait; a token naming an unknown key triggers a refresh, at
// most one per minGap, so a flood of bad kids cannot hammer the issuer.
type keySet struct {
	url, file    string
	client       *http.Client
	timeout      time.Duration
	refreshEvery time.Duration
	minGap       time.Duration
	now          func() time.Time
	log          *slog.Logger

	mu   sync.RWMutex
	keys map[string]verifyKey

	// fetchMu serializes refreshes and guards the fields below.
	fetchMu     sync.Mutex
	lastAttempt time.Time
	lastSuccess time.Time
	lastErr     error
	stamp       fileStamp
	valid       validators
}

// errUnknownKey is the keySet's refusal of a kid it does not hold.
var errUnknownKey = errors.New("unknown signing key")

// loadInitial loads a JWKS file at construction, so a bad file stops the start.
// A URL is fetched later (by Run, or by the first token), so an unreachable
// issuer does not keep the gateway from serving certificate devices.
func (s *keySet) loadInitial() error {
	if s.file == "" {
		return nil
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	return s.reloadFileLocked(true)
}

func (s *keySet) lookup(kid string) (verifyKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[kid]
	return k, ok
}

// get returns the key named kid, refreshing once when it is unknown and the
// last refresh is at least minGap old.
func (s *keySet) get(ctx context.Context, kid string) (verifyKey, error) {
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if k, ok := s.lookup(kid); ok {
		return k, nil // another request's refresh brought it
	}
	if !s.lastAttempt.IsZero() && s.now().Sub(s.lastAttempt) < s.minGap {
		return verifyKey{}, fmt.Errorf("%w: kid %q", errUnknownKey, kid)
	}
	// The request may go away; the refresh serves every waiter, so it does not.
	_ = s.refreshLocked(context.WithoutCancel(ctx), true)
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	return verifyKey{}, fmt.Errorf("%w: kid %q", errUnknownKey, kid)
}

// refresh does what is due: a file is reloaded when it changed; a URL is
// fetched every refreshEvery, and after a failure again once minGap has passed.
func (s *keySet) refresh(ctx context.Context) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	return s.refreshLocked(ctx, false)
}

func (s *keySet) refreshLocked(ctx context.Context, force bool) error {
	if s.file != "" {
		return s.reloadFileLocked(false)
	}
	now := s.now()
	due := s.lastSuccess.IsZero() || now.Sub(s.lastSuccess) >= s.refreshEvery
	if s.lastErr != nil && now.Sub(s.lastAttempt) < s.minGap {
		due = false
	}
	if !due && !force {
		return nil
	}
	s.lastAttempt = now
	s.lastErr = s.fetchLocked(ctx)
	if s.lastErr != nil {
		s.log.Warn("JWKS fetch failed; keeping the keys held", "url", s.url, "err", s.lastErr)
		return s.lastErr
	}
	s.lastSuccess = now
	return nil
}

func (s *keySet) fetchLocked(ctx context.Context) error {
	data, v, err := fetch(ctx, s.client, s.url, s.timeout, maxJWKSBytes, s.valid)
	if errors.Is(err, errNotModified) {
		return nil
	}
	if err != nil {
		return err
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return fmt.Errorf("%s: %w", s.url, err)
	}
	s.valid = v
	s.set(keys)
	return nil
}

// reloadFileLocked reloads the JWKS file when it changed since the last load
// (or always when initial). A bad new file keeps the old keys.
func (s *keySet) reloadFileLocked(initial bool) error {
	s.lastAttempt = s.now()
	st, err := stampOf(s.file)
	if err != nil {
		return s.fileFailed(initial, err)
	}
	if !initial && st == s.stamp {
		return nil
	}
	data, err := readBounded(s.file, maxJWKSBytes)
	if err != nil {
		return s.fileFailed(initial, err)
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return s.fileFailed(initial, fmt.Errorf("%s: %w", s.file, err))
	}
	s.stamp = st
	s.lastSuccess = s.lastAttempt
	s.set(keys)
	if !initial {
		s.log.Info("JWKS file reloaded", "file", s.file, "keys", len(keys))
	}
	return nil
}

func (s *keySet) fileFailed(initial bool, err error) error {
	if !initial {
		s.log.Warn("JWKS file reload failed; keeping the keys held", "file", s.file, "err", err)
	}
	return err
}

func (s *keySet) set(keys map[string]verifyKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}
