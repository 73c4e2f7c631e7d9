package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func costRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runCost(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

type planJSON struct {
	Profile         string `json:"profile"`
	Devices         int64  `json:"devices"`
	InstancesNeeded int64  `json:"instances_needed"`
	Instances       int    `json:"instances"`
	Fits            bool   `json:"fits"`
	Services        int64  `json:"services"`
	Currency        string `json:"currency"`
	Low, High       struct {
		MonthlyEgressBytes float64 `json:"monthly_egress_bytes"`
		Egress             float64 `json:"egress"`
		Compute            float64 `json:"compute"`
		Total              float64 `json:"total"`
	}
}

func costNear(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestCostFiftyThousandDevices checks `cmg cost -devices 50000` against a hand
// calculation with the built-in example prices (USD; 100 GB free, then 0.087
// per GB up to 10,000 GB; 0.091 an hour; 6,000 devices per instance) and the
// load tester's default profile.
//
// High bound, the original product's habits: client-traffic.md section 6's rows
// exactly, before the table rounds them (KB = 1,000 B):
//
//	machine policy 720 x (9.0+5.8+2.6) = 12,528    renewals 2,880 x (9.0+2.5+1.0) = 36,000
//	state 1,440 x (9.0+6.5+0.2) = 22,608           status 300 x 15.7 = 4,710
//	CCM_STS 90 x 12.6 = 1,134                      location 30 x (9.0+3x3.0+6.5+8.0) = 975
//	WSUS location 30 x 17.5 = 525                  policy bodies 60 x 33.5 = 2,010
//	CI documents 200 x 43.5 = 8,700                SUP scans 8 x 123 = 984
//	patch metadata 1 x 8,126 = 8,126               WUA reports 10 x 13.5 = 135
//	HINV delta 4.3 x 76 = 326.8                    HINV full 0.33 x 622 = 205.26
//	SINV, DDR, metering 4.3 x (31.0+21.2+15.2) = 289.82
//	total 99,256.88 KB = 99.25688 MB
//
// Low bound, cmg's habits: no renewals (-36,000 KB); one notification channel a
// day, 30 x (0.3 TLS resumed + 2.5 + 0.4 + 0.1 headers + 138.24 heartbeats) =
// +4,246.2 KB; the other 2,646.53 new connections a month resume TLS,
// 2,646.53 x (6.0 - 0.3) = -15,085.221 KB: 52,417.859 KB = 52.417859 MB.
//
//	instances = ceil(50,000 / 6,000) = 9; compute = 9 x 0.091 x 720 = 589.68
//	high egress = 50,000 x 99.25688 MB = 4,962.844 GB; (4,962.844 - 100) x 0.087 = 423.067428
//	low egress  = 50,000 x 52.417859 MB = 2,620.89295 GB; (2,620.89295 - 100) x 0.087 = 219.31768665
//	totals 809.00 (808.99768665) and 1,012.747428
func TestCostFiftyThousandDevices(t *testing.T) {
	code, out, errs := costRun("-devices", "50000", "-json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	var p planJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	checks := []struct {
		what      string
		got, want float64
	}{
		{"instances", float64(p.Instances), 9},
		{"low egress bytes", p.Low.MonthlyEgressBytes, 2620.89295e9},
		{"high egress bytes", p.High.MonthlyEgressBytes, 4962.844e9},
		{"low egress cost", p.Low.Egress, 219.31768665},
		{"high egress cost", p.High.Egress, 423.067428},
		{"compute", p.Low.Compute, 589.68},
		{"low total", p.Low.Total, 808.99768665},
		{"high total", p.High.Total, 1012.747428},
	}
	for _, c := range checks {
		if !costNear(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if p.Profile != "default" || p.Currency != "USD" || !p.Fits {
		t.Errorf("got profile %q, currency %q, fits %v; want default, USD, true", p.Profile, p.Currency, p.Fits)
	}

	code, out, _ = costRun("-devices", "50000")
	if code != 0 {
		t.Fatalf("text: exit %d", code)
	}
	for _, want := range []string{"instances: 9 ", "2.621 TB", "4.963 TB", "USD 219.32", "USD 589.68", "USD 809.00", "USD 1012.75", "52.42 MB to 99.26 MB"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func TestCostFilesAndFlags(t *testing.T) {
	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.yaml")
	costWriteFile(t, prices, "currency: EUR\negress_tiers: [{price_per_gb: 0.05}]\ninstance_hourly_price: 0.2\ninstances: 2\n")
	profile := filepath.Join(dir, "site.yaml")
	costWriteFile(t, profile, "name: site\nclasses:\n  - {name: poll, per_month: 1000, per_month_high: 2000, bytes: 50KB}\n")
	// 10,000 devices × 50 MB = 500 GB × 0.05 = 25; × 100 MB = 1,000 GB = 50.
	// capacity 4,000: ceil(2.5) = 3 instances × 0.2 × 720 = 432.
	code, out, errs := costRun("-devices", "10000", "-profile", profile, "-prices", prices, "-capacity", "4000", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var p planJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	if p.Profile != "site" || p.Instances != 3 || !costNear(p.Low.Egress, 25) || !costNear(p.High.Egress, 50) || !costNear(p.High.Compute, 432) || p.Currency != "EUR" {
		t.Errorf("got %+v; want site, 3 instances, egress 25..50 EUR, compute 432", p)
	}
}

func TestCostTooManyDevices(t *testing.T) {
	code, out, _ := costRun("-devices", "200000", "-profile", "dynamic")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "instances: 16 ") || !strings.Contains(out, "need 34 instances") || !strings.Contains(out, "3 services") {
		t.Errorf("want 16 instances and a warning that 34 are needed over 3 services:\n%s", out)
	}
}

func TestCostErrors(t *testing.T) {
	dir := t.TempDir()
	badPrices := filepath.Join(dir, "prices.yaml")
	costWriteFile(t, badPrices, "currency: EUR\ninstances: 40\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, 0, "usage: cmg cost"},
		{"no devices", nil, 2, "-devices"},
		{"zero devices", []string{"-devices", "0"}, 2, "-devices"},
		{"a stray argument", []string{"-devices", "5", "extra"}, 2, "no arguments"},
		{"negative capacity", []string{"-devices", "5", "-capacity", "-1"}, 2, "-capacity"},
		{"unknown flag", []string{"-instances", "3"}, 2, "not defined"},
		{"unknown profile", []string{"-devices", "5", "-profile", filepath.Join(dir, "nope")}, 1, "default, dynamic"},
		{"bad prices", []string{"-devices", "5", "-prices", badPrices}, 1, "line 2: instances"},
		{"missing prices", []string{"-devices", "5", "-prices", filepath.Join(dir, "none.yaml")}, 1, "none.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := costRun(tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("got exit %d, stderr %q; want exit %d mentioning %q", code, errs, tt.code, tt.want)
			}
		})
	}
}

func costWriteFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
