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
// default profile (66.2 MB to 99.3 MB per device per month):
//
//	instances = ceil(50,000 / 6,000) = 9
//	low egress  = 50,000 × 66.2 MB = 3,310 GB; (3,310 - 100) × 0.087 = 279.27
//	high egress = 50,000 × 99.3 MB = 4,965 GB; (4,965 - 100) × 0.087 = 423.255
//	compute     = 9 × 0.091 × 720 = 589.68
//	total       = 868.95 and 1,012.935
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
		{"low egress bytes", p.Low.MonthlyEgressBytes, 3310e9},
		{"high egress bytes", p.High.MonthlyEgressBytes, 4965e9},
		{"low egress cost", p.Low.Egress, 279.27},
		{"high egress cost", p.High.Egress, 423.255},
		{"compute", p.Low.Compute, 589.68},
		{"low total", p.Low.Total, 868.95},
		{"high total", p.High.Total, 1012.935},
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
	for _, want := range []string{"instances: 9 ", "3.31 TB", "4.965 TB", "USD 279.27", "USD 589.68", "USD 868.95", "66.2 MB to 99.3 MB"} {
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
