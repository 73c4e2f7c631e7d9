package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cmg-gateway/cmg/sitetoken"
)

// The files `cmg token keygen` writes in its -out directory.
const (
	siteKeyFile    = "site-key.pem"
	sitePubKeyFile = "site-key.pub.pem"
)

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, `usage: cmg token <keygen|issue> [flags]   (cmg token <sub> -h for its flags)

  keygen   write a new site signing key and its public key
  issue    print a signed site token (device, registration or content)`)
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "keygen":
		return tokenKeygen(args[1:], stdout, stderr)
	case "issue":
		return tokenIssue(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage()
		return 0
	}
	fmt.Fprintf(stderr, "cmg token: unknown subcommand %q\n\n", args[0])
	usage()
	return 2
}

func tokenKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the key files into this `DIR` (created if missing)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: cmg token keygen -out DIR

Writes a new site signing key (ECDSA P-256) as DIR/%s (mode 0600; keep it on
the site) and its public key as DIR/%s (give it to the gateways:
auth.tokens.site.keys[].file), and prints the key id (kid). Existing files are
never overwritten.

flags:
`, siteKeyFile, sitePubKeyFile)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "token keygen: %v\n", err)
		return 1
	}
	key, err := sitetoken.GenerateKey()
	if err == nil {
		err = sitetoken.WriteKey(filepath.Join(*out, siteKeyFile), key)
	}
	if err == nil {
		err = sitetoken.WritePublicKey(filepath.Join(*out, sitePubKeyFile), &key.PublicKey)
	}
	if err != nil {
		fmt.Fprintf(stderr, "token keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "kid: %s\n", sitetoken.KeyID(&key.PublicKey))
	return 0
}

func tokenIssue(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "the site signing key `FILE` (from cmg token keygen)")
	kid := fs.String("kid", "", "the key id `K` (default: the key's RFC 7638 thumbprint, as keygen prints)")
	site := fs.String("site", "", "the `SITE` the token is for")
	kind := fs.String("kind", "device", "the token `KIND`: device, registration or content")
	subject := fs.String("subject", "", "the device identity `ID` (default for registration tokens: bulk-registration)")
	pkg := fs.String("package", "", "the package `P` a content token grants")
	ttl := fs.Duration("ttl", 0, "the lifetime `D` (default: device 2160h, registration 72h (at most 168h), content 24h)")
	aud := fs.String("audience", "", "the audience `A` (aud claim), when the gateways check one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: cmg token issue -key FILE -site S [-kid K] [-kind device|registration|content]
                       -subject ID [-package P] [-ttl D] [-audience A]

Prints a site token: a JWT signed with ES256 by the site key, with kid, site,
kind, iss, sub, aud, iat, nbf, exp, jti (and pkg for content tokens).

flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	k, err := sitetoken.ParseKind(*kind)
	if err != nil || *keyFile == "" || *site == "" || fs.NArg() > 0 {
		if err != nil {
			fmt.Fprintf(stderr, "token issue: %v\n", err)
		}
		fs.Usage()
		return 2
	}
	if *subject == "" && k == sitetoken.Registration {
		*subject = "bulk-registration"
	}
	tok, err := issueToken(*keyFile, *kid, *site, k, *subject, sitetoken.Options{TTL: *ttl, Package: *pkg, Audience: audiences(*aud)})
	if err != nil {
		fmt.Fprintf(stderr, "token issue: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

func issueToken(keyFile, kid, site string, kind sitetoken.Kind, subject string, opts sitetoken.Options) (string, error) {
	key, err := sitetoken.LoadKey(keyFile)
	if err != nil {
		return "", err
	}
	iss, err := sitetoken.NewIssuer(key, kid, site)
	if err != nil {
		return "", err
	}
	opts.Now = time.Now()
	return iss.Issue(kind, subject, opts)
}

func audiences(a string) []string {
	if a == "" {
		return nil
	}
	return []string{a}
}
