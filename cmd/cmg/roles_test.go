package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRolesFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"-h"}, 0},
		{"unknown flag", []string{"-nope"}, 2},
		{"stray argument", []string{"x"}, 2},
		{"missing config", []string{"-config", filepath.Join(t.TempDir(), "none.yaml")}, 1},
		{"bad listen address", []string{"-listen", "256.0.0.1:bad"}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := runRoles(context.Background(), tt.args, &out, &errb); got != tt.want {
				t.Errorf("got exit %d, want %d (stderr %s)", got, tt.want, errb.String())
			}
		})
	}
}

// lineWriter hands the command's output to the test through a pipe.
type lineWriter struct{ w *io.PipeWriter }

func (l lineWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

func TestRunRolesServes(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "roles.yaml")
	if err := os.WriteFile(cfgFile, []byte("site:\n  code: XYZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- runRoles(ctx, []string{"-listen", "127.0.0.1:0", "-config", cfgFile}, lineWriter{pw}, io.Discard)
		pw.Close()
	}()
	// The first line names the management point URL once the listener is bound.
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	mp := strings.TrimSpace(strings.TrimPrefix(line, "management point:"))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(mp + "/SMS_MP/.sms_aut?MPLIST2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `SiteCode="XYZ"`) {
		t.Errorf("got %s, want the configured site code", b)
	}
	cancel()
	if got := <-done; got != 0 {
		t.Errorf("exit: got %d, want 0", got)
	}
}
