package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func runPolicyT(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runPolicy(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

var examplesDir = filepath.Join("..", "..", "policies", "examples")

func TestPolicyCheck(t *testing.T) {
	broken := filepath.Join("..", "..", "policies", "testdata", "broken.yaml")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		notInOut string
	}{
		{"pki example", []string{"check", filepath.Join(examplesDir, "pki-devices.yaml")}, 0,
			[]string{"ok: 5 rule(s), default deny, egress budget 2TB per 336h (warning 0.5, critical 0.9, warn only)"}, ""},
		{"site token example", []string{"check", filepath.Join(examplesDir, "site-token-devices.yaml")}, 0,
			[]string{"ok: 5 rule(s)", "stop serving at critical"}, ""},
		{"azure example", []string{"check", filepath.Join(examplesDir, "azure-ad-devices.yaml")}, 0, []string{"ok: 3 rule(s)"}, ""},
		{"broken file", []string{"check", broken}, 1, []string{
			broken + `:1: version: unsupported version 2`,
			broken + `:7: rules[0].match.source: bad CIDR "10.0.0.300/8"`,
			broken + `:17: rules[3].name: duplicate rule name "bad-action"`,
			broken + `:52: egress_budget.stop_on_critical: must be true or false`,
		}, "ok"},
		{"missing file", []string{"check", "no-such-file.yaml"}, 1, nil, "ok"},
		{"no file", []string{"check"}, 2, nil, ""},
		{"two files", []string{"check", "a", "b"}, 2, nil, ""},
		{"help", []string{"check", "-h"}, 0, nil, ""},
		{"no subcommand", nil, 2, nil, ""},
		{"unknown subcommand", []string{"lint"}, 2, nil, ""},
		{"policy help", []string{"-h"}, 0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runPolicyT(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if tt.notInOut != "" && strings.HasPrefix(out, tt.notInOut) {
				t.Errorf("stdout starts with %q:\n%s", tt.notInOut, out)
			}
		})
	}
}

func TestPolicyCheckListsEveryProblem(t *testing.T) {
	_, out, errOut := runPolicyT("check", filepath.Join("..", "..", "policies", "testdata", "broken.yaml"))
	if n := strings.Count(out, "\n"); n != 28 {
		t.Errorf("got %d problem lines, want 28:\n%s", n, out)
	}
	if !strings.Contains(errOut, "28 problem(s)") {
		t.Errorf("stderr: %q, want the count", errOut)
	}
}

func TestPolicyExplain(t *testing.T) {
	pki := filepath.Join(examplesDir, "pki-devices.yaml")
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{
			name: "certificate device reaches the management point",
			args: []string{"explain", "-policy", pki, "-auth", "certificate",
				"-subject", "CN=ws042,OU=Workstations,O=Contoso,C=US", "-issuer", "CN=Contoso Issuing CA 2,O=Contoso,C=US",
				"-source", "203.0.113.7", "-role", "management_point", "-path", "/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/.sms_aut"},
			want: []string{
				`rule "deny-lab-network" (line 17): no match`,
				`source 203.0.113.7 is in none of 198.51.100.0/24, 2001:db8:1ab::/48`,
				`rule "deny-retired-issuing-ca" (line 25): no match`,
				`rule "workstations-management-point" (line 32): matches`,
				`decision: allow by rule "workstations-management-point"`,
				"limits: rate 2/s burst 30, body 64MiB, concurrency 4",
			},
		},
		{
			name: "lab network denied",
			args: []string{"explain", "-policy", pki, "-auth", "certificate", "-source", "2001:db8:1ab::9"},
			want: []string{`decision: deny by rule "deny-lab-network"`, `reason: denied by policy rule "deny-lab-network"`},
		},
		{
			name: "claims, repeated into a list",
			args: []string{"explain", "-policy", filepath.Join(examplesDir, "azure-ad-devices.yaml"), "-auth", "oidc",
				"-claim", "tid=9188040d-6c67-4c5b-b112-36a304b66dad", "-claim", "deviceCompliance=false", "-claim", "deviceCompliance=true",
				"-role", "management_point"},
			want: []string{`decision: allow by rule "fabrikam-management-point"`},
		},
		{
			name: "default",
			args: []string{"explain", "-policy", filepath.Join(examplesDir, "site-token-devices.yaml"), "-auth", "site_token", "-claim", "site=PS9"},
			want: []string{`claim "site" is "PS9", not "PS1"`, "decision: deny by the default action"},
		},
		{name: "missing -policy", args: []string{"explain", "-auth", "oidc"}, code: 2},
		{name: "bad auth", args: []string{"explain", "-policy", pki, "-auth", "kerberos"}, code: 2},
		{name: "bad role", args: []string{"explain", "-policy", pki, "-role", "dp"}, code: 2},
		{name: "bad source", args: []string{"explain", "-policy", pki, "-source", "10.0.0.0/8"}, code: 2},
		{name: "bad claim", args: []string{"explain", "-policy", pki, "-claim", "novalue"}, code: 2},
		{name: "broken policy", args: []string{"explain", "-policy", filepath.Join("..", "..", "policies", "testdata", "broken.yaml")}, code: 1},
		{name: "help", args: []string{"explain", "-h"}, code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runPolicyT(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
