package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/sitetoken"
)

func runTokenCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runToken(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenKeygenAndIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	code, out, stderr := runTokenCmd("keygen", "-out", dir)
	if code != 0 {
		t.Fatalf("keygen: got exit %d (%s), want 0", code, stderr)
	}
	kid := strings.TrimSpace(strings.TrimPrefix(out, "kid: "))
	pub, err := sitetoken.LoadPublicKey(filepath.Join(dir, sitePubKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if kid != sitetoken.KeyID(pub) {
		t.Errorf("got kid %q printed, want %q", kid, sitetoken.KeyID(pub))
	}
	if code, _, _ := runTokenCmd("keygen", "-out", dir); code != 1 {
		t.Errorf("keygen over existing files: got exit %d, want 1", code)
	}

	v, err := sitetoken.NewVerifier([]sitetoken.Key{{ID: kid, Site: "PS1", Public: pub}}, sitetoken.VerifyOptions{Audience: "cmg"})
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, siteKeyFile)
	tests := []struct {
		name     string
		args     []string
		kind     sitetoken.Kind
		subject  string
		lifetime time.Duration
	}{
		{"device", []string{"-kind", "device", "-subject", "ghost-01"}, sitetoken.Device, "ghost-01", 90 * 24 * time.Hour},
		{"registration", []string{"-kind", "registration", "-ttl", "168h"}, sitetoken.Registration, "bulk-registration", 168 * time.Hour},
		{"content", []string{"-kind", "content", "-subject", "ghost-01", "-package", "PS100004", "-ttl", "8h"}, sitetoken.Content, "ghost-01", 8 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"issue", "-key", key, "-site", "PS1", "-audience", "cmg"}, tt.args...)
			code, out, stderr := runTokenCmd(args...)
			if code != 0 {
				t.Fatalf("got exit %d (%s), want 0", code, stderr)
			}
			c, err := v.Verify(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("the printed token does not verify: %v", err)
			}
			if c.Kind != tt.kind || c.Subject != tt.subject || c.Expires.Sub(c.IssuedAt) != tt.lifetime {
				t.Errorf("got %s %q lifetime %s, want %s %q %s", c.Kind, c.Subject, c.Expires.Sub(c.IssuedAt), tt.kind, tt.subject, tt.lifetime)
			}
		})
	}
}

func TestTokenIssueRefuses(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runTokenCmd("keygen", "-out", dir); code != 0 {
		t.Fatal(stderr)
	}
	key := filepath.Join(dir, siteKeyFile)
	tests := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"registration over 7 days", []string{"issue", "-key", key, "-site", "PS1", "-kind", "registration", "-ttl", "200h"}, 1, "at most 168h"},
		{"content without package", []string{"issue", "-key", key, "-site", "PS1", "-kind", "content", "-subject", "d"}, 1, "package"},
		{"device without subject", []string{"issue", "-key", key, "-site", "PS1"}, 1, "subject"},
		{"unknown kind", []string{"issue", "-key", key, "-site", "PS1", "-kind", "admin"}, 2, "unknown token kind"},
		{"no key", []string{"issue", "-site", "PS1", "-subject", "d"}, 2, "usage"},
		{"public key as key", []string{"issue", "-key", filepath.Join(dir, sitePubKeyFile), "-site", "PS1", "-subject", "d"}, 1, "not a private key"},
		{"no subcommand", nil, 2, "usage"},
		{"unknown subcommand", []string{"verify"}, 2, "unknown subcommand"},
		{"keygen without -out", []string{"keygen"}, 2, "usage"},
		{"help", []string{"-h"}, 0, "usage"},
		{"issue help", []string{"issue", "-h"}, 0, "usage"},
		{"keygen help", []string{"keygen", "-h"}, 0, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runTokenCmd(tt.args...)
			if code != tt.code {
				t.Errorf("got exit %d, want %d (stderr %s)", code, tt.code, stderr)
			}
			if tt.code != 0 && out != "" {
				t.Errorf("got stdout %q, want nothing", out)
			}
			if !strings.Contains(stderr, tt.say) {
				t.Errorf("got stderr %q, want it to say %q", stderr, tt.say)
			}
		})
	}
}

func TestTokenKeygenKeyMode(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runTokenCmd("keygen", "-out", dir); code != 0 {
		t.Fatal(stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, siteKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got key mode %o, want 600", fi.Mode().Perm())
	}
}
