package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/cmg-gateway/cmg/loadtest/profile"
	"github.com/cmg-gateway/cmg/loadtest/roles"
)

func TestBalancer(t *testing.T) {
	b, err := NewBalancer([]string{"https://a:1", "https://b:2", "https://c"}, SpreadConnection, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.targets[2].Addr != "c:443" {
		t.Errorf("default port: got %s", b.targets[2].Addr)
	}
	seen := map[string]int{}
	for range 300 {
		tg, wait := b.pick(0)
		if wait != 0 {
			t.Fatal("waited with every target up")
		}
		seen[tg.Addr]++
	}
	for _, tg := range b.targets {
		if seen[tg.Addr] < 60 {
			t.Errorf("spread per connection: %s got %d of 300", tg.Addr, seen[tg.Addr])
		}
	}
	// A failed target is left out while it backs off.
	b.failed(b.targets[0])
	for range 100 {
		if tg, _ := b.pick(0); tg == b.targets[0] {
			t.Fatal("picked a target that is backing off")
		}
	}
	// All down: the one back first, and how long until then.
	b.failed(b.targets[1])
	b.failed(b.targets[2])
	if _, wait := b.pick(0); wait <= 0 || wait > 100*time.Millisecond {
		t.Errorf("all down: got wait %v, want (0, 100ms]", wait)
	}
	// Backoff grows to its cap.
	for range 20 {
		b.failed(b.targets[0])
	}
	if d := time.Until(time.Unix(0, b.targets[0].downUntil.Load())); d < 15*time.Second || d > 30*time.Second {
		t.Errorf("after many failures: backing off %v, want 15-30 s", d)
	}
	b.succeeded(b.targets[0])
	if b.targets[0].downUntil.Load() != 0 {
		t.Error("a target that answered is still backing off")
	}

	sticky, _ := NewBalancer([]string{"https://a:1", "https://b:2"}, SpreadDevice, 1)
	for dev := range 4 {
		first, _ := sticky.pick(dev)
		for range 10 {
			if tg, _ := sticky.pick(dev); tg != first {
				t.Fatalf("device %d moved from %s to %s while up", dev, first.Addr, tg.Addr)
			}
		}
	}
	if _, err := NewBalancer([]string{"http://a"}, SpreadDevice, 1); err == nil {
		t.Error("accepted a plain http target")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ReasonConnectRefused},
		{&tlsError{errors.New("x509: unknown authority")}, ReasonTLS},
		{&tlsError{io.EOF}, ReasonReset},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ReasonTimeout},
		{context.DeadlineExceeded, ReasonTimeout},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), ReasonReset},
		{io.ErrUnexpectedEOF, ReasonClosed},
		{context.Canceled, ReasonCanceled},
		{errors.New("malformed HTTP response"), ReasonProtocol},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("%v: got %s, want %s", tt.err, got, tt.want)
		}
	}
}

// TestMessagesReachTheirSize checks that the calibrated messages land within 5 %
// of the built-in profiles' sizes and that the site's parser reads them as the
// kind they are.
func TestMessagesReachTheirSize(t *testing.T) {
	g := newRnd(3)
	c := client{smsid: "GUID:1", netbios: "DESKTOP-1", fqdn: "desktop-1.example.com"}
	tests := []struct {
		key  string
		spec messageSpec
		size int
		root string
	}{
		{"policy", policySpec("Machine", "2024-03-12 10:00:00.000"), 5800, "RequestAssignments"},
		{"state", specState, 6500, "Report"},
		{"state-dyn", specState, 6900, "Report"},
		{"ddr", specDDR, 12000, "Report"},
		{"metering", specMetering, 6000, "Report"},
		{"script", specScript, 20000, "Report"},
		{"location", specLocation, 6500, "ContentLocationRequest"},
		{"wsus", specWSUSLoc, 6000, "WSUSLocationRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			ct, body := buildMessage(g, c, tt.key, tt.spec, tt.size, "mp01")
			if d := float64(len(body)-tt.size) / float64(tt.size); d > 0.05 || d < -0.05 {
				t.Errorf("got %d bytes, want %d within 5 %%", len(body), tt.size)
			}
			m, err := roles.ParseMessage(ct, body, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.TargetEndpoint != tt.spec.endpoint || len(m.Body) < 20 || m.Body[1:1+len(tt.root)] != tt.root {
				t.Errorf("got endpoint %s, body %.60s; want %s, <%s", m.Header.TargetEndpoint, m.Body, tt.spec.endpoint, tt.root)
			}
		})
	}
}

func TestPlans(t *testing.T) {
	p, _ := profile.Builtin("dynamic")
	plans := Plans(p, profile.Original)
	byName := map[string]*Plan{}
	for _, pl := range plans {
		byName[pl.Class.Name] = pl
	}
	if byName["notification_renewal"] == nil || byName["policy_bodies"] != nil || byName["content"] != nil {
		t.Errorf("original plans: renewal %v, followers or unsimulated classes scheduled", byName["notification_renewal"] != nil)
	}
	mp := byName["machine_policy"]
	if len(mp.Followers) != 2 || mp.Followers[0].Ratio != 150.0/2880 {
		t.Errorf("machine_policy followers: got %+v, want policy bodies at 150/2880 and CI documents", mp.Followers)
	}
	for _, pl := range Plans(p, profile.CMG) {
		if pl.Class.Kind == profile.KindNotificationRenewal || pl.Class.Kind == profile.KindNotificationChannel {
			t.Errorf("cmg plans hold %s (renewals are the original's; the channel is not simulated yet)", pl.Class.Name)
		}
	}
}
