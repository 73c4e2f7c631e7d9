package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cmg-gateway/cmg/pki"
)

func runPKI(_ context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, `usage: cmg pki <init|issue|revoke> -dir DIR [flags]

A small development PKI (not for production: keys are unencrypted).
  init    create the root CA, the device issuing CA, the connector CA, the gateway
          server certificate and an empty device CRL
  issue   issue a client (device), connector or server certificate
  revoke  revoke a device certificate: add it to the device CRL and re-sign it

Run "cmg pki <subcommand> -h" for its flags.`)
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "init":
		return pkiInit(args[1:], stdout, stderr)
	case "issue":
		return pkiIssue(args[1:], stdout, stderr)
	case "revoke":
		return pkiRevoke(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage()
		return 0
	}
	fmt.Fprintf(stderr, "cmg pki: unknown subcommand %q\n", args[0])
	usage()
	return 2
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func pkiInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pki init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "pki", "the PKI `directory`")
	var hosts listFlag
	fs.Var(&hosts, "host", "a DNS name or IP address of the gateway server certificate (repeatable; localhost, 127.0.0.1 and ::1 are always included)")
	crlURL := fs.String("crl-url", "", "the CRL distribution point `URL` written into client certificates issued later")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if err := pki.Init(pki.Dir(*dir), pki.InitOptions{Hosts: hosts, CRLURL: *crlURL}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "created the dev PKI in %s\n", *dir)
	return 0
}

func pkiIssue(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pki issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "pki", "the PKI `directory`")
	kind := fs.String("kind", "client", "client, connector or server")
	name := fs.String("name", "", "the device name (client: the subject CN) or connector name")
	site := fs.String("site", "site1", "the connector's site")
	var hosts listFlag
	fs.Var(&hosts, "host", "server: a DNS name or IP address (repeatable)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	d, now := pki.Dir(*dir), time.Now()
	var err error
	var files string
	switch *kind {
	case "client":
		err = pki.IssueClient(d, *name, now)
		files = d.Path(pki.ClientCert(*name)) + ", " + d.Path(pki.ClientKey(*name))
	case "connector":
		err = pki.IssueConnector(d, *site, *name, now)
		files = d.Path(pki.ConnectorCert(*name)) + ", " + d.Path(pki.ConnectorKey(*name))
	case "server":
		err = pki.IssueServer(d, hosts, now)
		files = d.Path(pki.GatewayCert) + ", " + d.Path(pki.GatewayKey)
	default:
		err = fmt.Errorf("-kind must be client, connector or server, not %q", *kind)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "issued %s\n", files)
	return 0
}

func pkiRevoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pki revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "pki", "the PKI `directory`")
	cert := fs.String("cert", "", "the device certificate `file` to revoke")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *cert == "" {
		fmt.Fprintln(stderr, "cmg pki revoke: -cert is required")
		return 2
	}
	if err := pki.Revoke(pki.Dir(*dir), *cert, time.Now()); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "revoked %s; the CRL is %s\n", *cert, pki.Dir(*dir).Path(pki.DeviceCRL))
	return 0
}
