package packaging

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cmg-gateway/cmg/appliance/connector"
	"github.com/cmg-gateway/cmg/appliance/gateway"
	"github.com/cmg-gateway/cmg/configfile"
	"github.com/cmg-gateway/cmg/demo"
	"github.com/cmg-gateway/cmg/policies"
)

// The example configurations that must have the shape of what `cmg demo init`
// writes: the commented examples the deb installs, and the compose stack's.
// (The Helm chart's values are checked against gateway.yaml and connector.yaml
// by tools/chartcheck.)
var exampleConfigs = []struct {
	file string
	demo func(*demo.Manifest) string // the demo file of the same kind
	typ  reflect.Type                // the Config it decodes into
	load func(path string) error     // strict decode and Validate
}{
	{"gateway.yaml", gatewayDemo, gatewayType, loadGateway},
	{"connector.yaml", connectorDemo, connectorType, loadConnector},
	{"compose/gateway.yaml", gatewayDemo, gatewayType, loadGateway},
	{"compose/connector.yaml", connectorDemo, connectorType, loadConnector},
}

var (
	gatewayType   = reflect.TypeFor[gateway.Config]()
	connectorType = reflect.TypeFor[connector.Config]()
)

func gatewayDemo(m *demo.Manifest) string   { return m.Gateways[0].Config }
func connectorDemo(m *demo.Manifest) string { return m.Connectors[0].Config }

func loadGateway(path string) error {
	cfg := gateway.DefaultConfig()
	return configfile.Load(path, &cfg)
}

func loadConnector(path string) error {
	cfg := connector.DefaultConfig()
	return configfile.Load(path, &cfg)
}

// TestExampleConfigsHaveTheDemoShape keeps every example's keys and structure
// equal to what `cmg demo init` writes (the values differ). When a section is
// added to a Config and to the demo, this fails naming each key an example
// lacks and where it goes.
func TestExampleConfigsHaveTheDemoShape(t *testing.T) {
	m, err := demo.Init(t.TempDir(), demo.DefaultPortBase)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exampleConfigs {
		t.Run(ex.file, func(t *testing.T) {
			want, err := readKeyTree(ex.demo(m))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readKeyTree(ex.file)
			if err != nil {
				t.Fatal(err)
			}
			demoName := "`cmg demo init`'s " + filepath.Base(ex.demo(m))
			for _, d := range diffKeyTrees("packaging/"+ex.file, got, demoName, want, optionalIn(ex.typ)) {
				t.Error(d)
			}
		})
	}
}

// TestExampleConfigsLoad decodes every example strictly and validates it, as
// `cmg gateway -check` does before it opens the certificate files.
func TestExampleConfigsLoad(t *testing.T) {
	for _, ex := range exampleConfigs {
		t.Run(ex.file, func(t *testing.T) {
			if err := ex.load(ex.file); err != nil {
				t.Errorf("got %v, want no problem", err)
			}
		})
	}
}

func TestExamplePolicyLoads(t *testing.T) {
	p, err := policies.Load("policy.yaml")
	if err != nil {
		t.Fatalf("got %v, want no problem", err)
	}
	if got := p.Default(); got != policies.Deny {
		t.Errorf("got default %v, want deny (a production policy refuses what no rule allows)", got)
	}
	if _, ok := p.Budget(); !ok {
		t.Error("got no egress budget, want one (it guards cost)")
	}
}

// shape is what TestDiffKeyTrees' documents decode into: o and p are optional.
type shape struct {
	A int `yaml:"a"`
	B struct {
		C string `yaml:"c"`
		D []int  `yaml:"d"`
		O int    `yaml:"o,omitempty"`
	} `yaml:"b"`
	E []struct {
		F int `yaml:"f"`
		G int `yaml:"g"`
		P []struct {
			Q int `yaml:"q"`
		} `yaml:"p,omitempty"`
	} `yaml:"e"`
}

// TestDiffKeyTrees makes sure the shape comparison reports what it must: a
// missing key with where it belongs, an extra key, and a changed kind.
func TestDiffKeyTrees(t *testing.T) {
	want := `
a: 1
b:
  c: x
  d: [1, 2]
  o: 1
e:
  - f: 1
    p: [{q: 1}]
  - g: 2
`
	tests := []struct {
		name    string
		example string
		want    []string // substrings, one per expected line, in order
	}{
		{"same shape, other values", "a: 9\nb: {c: y, d: [3]}\ne: [{f: 3, g: 4}]\n", nil},
		{"comments do not count", "a: 9 # x\nb:\n  c: y\n  d: []\n  # h: 1\ne: [{f: 0}, {g: 0}]\n", nil},
		{"missing nested key", "a: 9\nb: {d: [3]}\ne: [{f: 3, g: 4}]\n",
			[]string{"missing key b.c (demo has it, under b)"}},
		{"missing key in list elements", "a: 9\nb: {c: y, d: [3]}\ne: [{f: 3}]\n",
			[]string{"missing key e[].g (demo has it, under e[])"}},
		{"missing top-level key", "b: {c: y, d: [3]}\ne: [{f: 3, g: 4}]\n",
			[]string{"missing key a (demo has it, at the top level)"}},
		{"extra key", "a: 9\nb: {c: y, d: [3], z: 1}\ne: [{f: 3, g: 4}]\n",
			[]string{"key b.z is not in demo"}},
		{"optional key may be set", "a: 9\nb: {c: y, d: [3], o: 1}\ne: [{f: 3, g: 4, p: [{q: 1}]}]\n", nil},
		{"optional key may be left out", "a: 9\nb: {c: y, d: [3]}\ne: [{f: 3, g: 4}]\n", nil},
		{"kind changed", "a: 9\nb: {c: y, d: 3}\ne: [{f: 3, g: 4}]\n",
			[]string{"key b.d is a scalar, but in demo it is a sequence"}},
	}
	wt, err := parseKeyTree([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt, err := parseKeyTree([]byte(tt.example))
			if err != nil {
				t.Fatal(err)
			}
			got := diffKeyTrees("example", gt, "demo", wt, optionalIn(reflect.TypeFor[shape]()))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d differences %q, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("difference %d: got %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}
