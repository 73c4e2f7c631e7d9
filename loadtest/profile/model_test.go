package profile

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestBuiltinModelIsSectionSix checks that the built-in profiles priced with
// the original product's habits give client-traffic.md section 6's totals:
// 99.3 MB (59.0 to the device, 40.2 to the site, 5,938 exchanges) and 297.9 MB
// (152.6, 145.3, 16,372 exchanges), within the table's rounding.
func TestBuiltinModelIsSectionSix(t *testing.T) {
	tests := []struct {
		name                    string
		total, toDevice, toSite float64 // MB
		exchanges               float64
		rowName                 string
		rowMB                   float64
	}{
		{"default", 99.3, 59.0, 40.2, 5938, "notification_renewal", 36.00},
		{"dynamic", 297.9, 152.6, 145.3, 16372, "state_messages", 104.33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Builtin(tt.name)
			if !ok {
				t.Fatal("no such profile")
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			m := p.Model(Original)
			for _, c := range []struct {
				what      string
				got, want float64
				tol       float64
			}{
				{"total MB", m.Total / 1e6, tt.total, 0.35},
				{"to device MB", m.ToDevice / 1e6, tt.toDevice, 0.35},
				{"to site MB", m.ToSite / 1e6, tt.toSite, 0.35},
				{"exchanges", m.Exchanges, tt.exchanges, 5},
			} {
				if !near(c.got, c.want, c.tol) {
					t.Errorf("%s: got %.2f, want %.2f (section 6)", c.what, c.got, c.want)
				}
			}
			row, _ := m.Class(tt.rowName)
			if !near(row.Total()/1e6, tt.rowMB, 0.01) {
				t.Errorf("%s: got %.3f MB, want %.2f", tt.rowName, row.Total()/1e6, tt.rowMB)
			}
			t.Logf("%s: original %.1f MB (device %.1f, site %.1f, %.0f exchanges); cmg %.1f MB",
				tt.name, m.Total/1e6, m.ToDevice/1e6, m.ToSite/1e6, m.Exchanges, p.Model(CMG).Total/1e6)
		})
	}
}
