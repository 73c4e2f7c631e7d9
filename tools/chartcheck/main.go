// Command chartcheck checks the cmg Helm chart the way CI can without a
// cluster: it runs Helm's own lint (helm.sh/helm/v3/pkg/lint, what `helm lint`
// runs) in strict mode, renders the chart (pkg/engine, what `helm template`
// runs) for each instance count asked for, decodes every rendered object
// strictly (unknown fields fail) into the Kubernetes API types of k8s.io/api
// (and prometheus-operator's for the ServiceMonitor), and checks what the
// chart promises: pod i is instance i, instance i's tunnel ports are published
// whether or not it is ready, one connector identity per pod, the
// configuration files have the shape of packaging/gateway.yaml and
// packaging/connector.yaml, one dashboard ConfigMap per dashboard.
//
//	chartcheck -chart packaging/helm/cmg -examples packaging -dashboards dashboards/grafana -instances 1,16
//
// It is a library build of Helm rather than the helm binary because the
// binary takes about four minutes to build on a cold CI machine, this about one.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	release   = "cmg"
	namespace = "cmg"
)

func main() {
	chartDir := flag.String("chart", "packaging/helm/cmg", "the chart `directory`")
	examples := flag.String("examples", "packaging", "the `directory` of the example gateway.yaml and connector.yaml")
	dashboards := flag.String("dashboards", "dashboards/grafana", "the `directory` whose *.json the chart must carry")
	instances := flag.String("instances", "1,16", "comma-separated gateway instance `counts` to render")
	flag.Parse()
	// Helm's loader logs every symbolic link it follows (dashboards/ is one).
	log.SetOutput(io.Discard)
	counts, err := parseCounts(*instances)
	if err != nil {
		fatal(err)
	}
	dir, cleanup, err := chartWithoutDanglingLinks(*chartDir)
	if err != nil {
		fatal(err)
	}
	defer cleanup()
	c := &checker{out: os.Stdout}
	c.run(dir, *examples, *dashboards, counts)
	if c.failed > 0 {
		fmt.Printf("chartcheck: %d problem(s)\n", c.failed)
		cleanup()
		os.Exit(1)
	}
	fmt.Println("chartcheck: ok")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "chartcheck:", err)
	os.Exit(2)
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-instances: %q is not a number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// chartWithoutDanglingLinks returns the chart directory to load. The chart's
// dashboards/ is a link to the repository's dashboards/grafana; while that does
// not exist (a branch without the dashboards), Helm's loader would refuse the
// dangling link, so the chart is copied without it.
func chartWithoutDanglingLinks(dir string) (string, func(), error) {
	link := filepath.Join(dir, "dashboards")
	if _, err := os.Lstat(link); err != nil {
		return dir, func() {}, nil
	}
	if _, err := os.Stat(link); err == nil {
		return dir, func() {}, nil
	}
	fmt.Printf("chart: %s points nowhere (no dashboards in this tree): checking a copy without it\n", link)
	tmp, err := os.MkdirTemp("", "chartcheck-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	dst := filepath.Join(tmp, filepath.Base(dir))
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "dashboards" {
			return nil
		}
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return dst, cleanup, nil
}

type checker struct {
	out    io.Writer
	failed int
}

func (c *checker) errorf(format string, args ...any) {
	c.failed++
	fmt.Fprintf(c.out, "  FAIL "+format+"\n", args...)
}

func (c *checker) run(dir, examples, dashboardsDir string, counts []int) {
	ch, err := loader.Load(dir)
	if err != nil {
		c.errorf("loading the chart: %v", err)
		return
	}
	gwShape, err := readShape(filepath.Join(examples, "gateway.yaml"))
	if err != nil {
		c.errorf("%v", err)
		return
	}
	cpShape, err := readShape(filepath.Join(examples, "connector.yaml"))
	if err != nil {
		c.errorf("%v", err)
		return
	}
	dashboards, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	for _, n := range counts {
		vals := map[string]any{"gateway": map[string]any{"instances": n}}
		before := c.failed
		fmt.Fprintf(c.out, "chart %s, %d instance(s):\n", ch.Metadata.Name, n)
		c.lint(dir, vals)
		objs := c.render(ch, vals)
		c.checkGateway(objs, n, gwShape)
		c.checkConnectors(objs, ch, cpShape)
		c.checkMonitoring(objs, len(dashboards))
		if c.failed == before {
			fmt.Fprintf(c.out, "  ok: helm lint --strict clean; %d objects decoded strictly (%s)\n", len(objs), summary(objs))
		}
	}
	c.checkPolicy(ch, filepath.Join(examples, "policy.yaml"))
}

// checkPolicy renders the chart with gateway.policy set to the example policy:
// the ConfigMap must carry it and the configuration point at it.
func (c *checker) checkPolicy(ch *chart.Chart, path string) {
	policy, err := os.ReadFile(path)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	before := c.failed
	fmt.Fprintf(c.out, "chart %s, gateway.policy = %s:\n", ch.Metadata.Name, path)
	objs := c.render(ch, map[string]any{"gateway": map[string]any{"policy": string(policy)}})
	cm, ok := find[corev1.ConfigMap](objs, "ConfigMap", release+"-gateway")
	if !ok {
		c.errorf("no ConfigMap %s-gateway", release)
		return
	}
	if got := cm.Data["policy.yaml"]; strings.TrimSpace(got) != strings.TrimSpace(string(policy)) {
		c.errorf("ConfigMap %s: policy.yaml is not %s (got %d bytes)", cm.Name, path, len(got))
	}
	var cfg struct {
		Policy struct {
			File string `json:"file"`
		} `json:"policy"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["gateway.yaml"]), &cfg); err != nil {
		c.errorf("ConfigMap %s: gateway.yaml: %v", cm.Name, err)
	} else if cfg.Policy.File != "/etc/cmg/config/policy.yaml" {
		c.errorf("ConfigMap %s: gateway.yaml policy.file is %q, want /etc/cmg/config/policy.yaml", cm.Name, cfg.Policy.File)
	}
	if c.failed == before {
		fmt.Fprintf(c.out, "  ok: policy.yaml mounted and named by policy.file\n")
	}
}

// lint runs Helm's chart linter as `helm lint --strict` does: any message
// of warning severity or worse fails.
func (c *checker) lint(dir string, vals map[string]any) {
	l := lint.AllWithKubeVersion(dir, vals, namespace, nil)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			c.errorf("helm lint: %s", m)
		}
	}
}

// object is one rendered manifest decoded into its API type.
type object struct {
	source string
	kind   string
	name   string
	labels map[string]string
	obj    any
}

func summary(objs []object) string {
	n := map[string]int{}
	for _, o := range objs {
		n[o.kind]++
	}
	var ks []string
	for k := range n {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
	}
	return strings.Join(parts, ", ")
}

// render renders the chart as `helm template` does and decodes each object
// strictly into its type.
func (c *checker) render(ch *chart.Chart, vals map[string]any) []object {
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities.Copy())
	if err != nil {
		c.errorf("values: %v", err)
		return nil
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		c.errorf("render: %v", err)
		return nil
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var objs []object
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasSuffix(name, ".tpl") {
			continue
		}
		manifests := releaseutil.SplitManifests(files[name])
		keys := make([]string, 0, len(manifests))
		for k := range manifests {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			doc := manifests[k]
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			o, err := decodeStrict([]byte(doc))
			if err != nil {
				c.errorf("%s: %v", name, err)
				continue
			}
			o.source = name
			objs = append(objs, o)
		}
	}
	return objs
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// decodeStrict decodes one manifest into the type of its apiVersion and kind,
// refusing unknown and duplicate fields.
func decodeStrict(doc []byte) (object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return object{}, err
	}
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "apps/v1/StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "policy/v1/PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		obj = &monitoringv1.ServiceMonitor{}
	default:
		return object{}, fmt.Errorf("%s %s: no API type known to chartcheck", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return object{}, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	meta := obj.(metav1.ObjectMetaAccessor).GetObjectMeta()
	if meta.GetName() == "" {
		return object{}, fmt.Errorf("%s without a name", tm.Kind)
	}
	return object{kind: tm.Kind, name: meta.GetName(), labels: meta.GetLabels(), obj: obj}, nil
}

func find[T any](objs []object, kind, name string) (*T, bool) {
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			t, ok := o.obj.(*T)
			return t, ok
		}
	}
	return nil, false
}

func (c *checker) checkGateway(objs []object, n int, shape map[string]string) {
	base := release + "-gateway"
	sts, ok := find[appsv1.StatefulSet](objs, "StatefulSet", base)
	if !ok {
		c.errorf("no StatefulSet %s", base)
		return
	}
	if sts.Spec.Replicas == nil || int(*sts.Spec.Replicas) != n {
		c.errorf("StatefulSet %s: got replicas %v, want %d (pod i is instance i)", base, sts.Spec.Replicas, n)
	}
	args := sts.Spec.Template.Spec.Containers[0].Args
	if !contains(args, "-instance-from-hostname") {
		c.errorf("StatefulSet %s: args %q lack -instance-from-hostname", base, args)
	}
	if _, ok := find[corev1.Service](objs, "Service", sts.Spec.ServiceName); !ok {
		c.errorf("StatefulSet %s: its serviceName %q is not rendered", base, sts.Spec.ServiceName)
	}
	podLabels := sts.Spec.Template.Labels

	// Devices on 443: ready instances only, unless there is one instance.
	if svc, ok := find[corev1.Service](objs, "Service", base); !ok {
		c.errorf("no Service %s for devices", base)
	} else {
		if !hasPort(svc, 443) {
			c.errorf("Service %s: no port 443", base)
		}
		if want := n == 1; svc.Spec.PublishNotReadyAddresses != want {
			c.errorf("Service %s: got publishNotReadyAddresses %v, want %v with %d instance(s)", base, svc.Spec.PublishNotReadyAddresses, want, n)
		}
	}
	// Instance i's tunnel ports: its own pod, ready or not.
	tunnels := 0
	for _, o := range objs {
		if o.kind == "Service" && o.labels["cmg.io/instance"] != "" {
			tunnels++
		}
	}
	if tunnels != n {
		c.errorf("got %d per-instance tunnel Services, want %d", tunnels, n)
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", base, i)
		svc, ok := find[corev1.Service](objs, "Service", name)
		if !ok {
			c.errorf("no tunnel Service %s for instance %d", name, i)
			continue
		}
		if !svc.Spec.PublishNotReadyAddresses {
			c.errorf("Service %s: publishNotReadyAddresses is false: a connector could never reach a not-yet-ready instance", name)
		}
		if got := svc.Spec.Selector["statefulset.kubernetes.io/pod-name"]; got != name {
			c.errorf("Service %s: selects pod %q, want %q", name, got, name)
		}
		for k, v := range svc.Spec.Selector {
			if k != "statefulset.kubernetes.io/pod-name" && podLabels[k] != v {
				c.errorf("Service %s: selector %s=%s matches no gateway pod", name, k, v)
			}
		}
		if !hasSamePort(svc, 10140+i) {
			c.errorf("Service %s: no TCP-TLS tunnel port %d", name, 10140+i)
		}
		if n > 1 && !hasSamePort(svc, 10124+i) {
			c.errorf("Service %s: no HTTPS tunnel port %d", name, 10124+i)
		}
	}
	if _, ok := find[policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget", base); !ok {
		c.errorf("no PodDisruptionBudget %s", base)
	}
	// The configuration: instances, and the example's shape.
	cm, ok := find[corev1.ConfigMap](objs, "ConfigMap", base)
	if !ok {
		c.errorf("no ConfigMap %s", base)
		return
	}
	data := cm.Data["gateway.yaml"]
	var cfg struct {
		Instance  int `json:"instance"`
		Instances int `json:"instances"`
	}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		c.errorf("ConfigMap %s: gateway.yaml: %v", base, err)
		return
	}
	if cfg.Instances != n {
		c.errorf("ConfigMap %s: gateway.yaml says instances %d, want %d", base, cfg.Instances, n)
	}
	c.compareShape("ConfigMap "+base+" gateway.yaml", data, "packaging/gateway.yaml", shape)
}

func (c *checker) checkConnectors(objs []object, ch *chart.Chart, shape map[string]string) {
	base := release + "-connector"
	sts, ok := find[appsv1.StatefulSet](objs, "StatefulSet", base)
	if !ok {
		c.errorf("no StatefulSet %s", base)
		return
	}
	replicas := int(*sts.Spec.Replicas)
	if want := int(ch.Values["connector"].(map[string]any)["replicas"].(float64)); replicas != want {
		c.errorf("StatefulSet %s: got replicas %d, want %d", base, replicas, want)
	}
	if args := sts.Spec.Template.Spec.Containers[0].Args; !contains(args, "/etc/cmg/config/$(POD_NAME).yaml") {
		c.errorf("StatefulSet %s: args %q do not pick the pod's own file", base, args)
	}
	cm, ok := find[corev1.ConfigMap](objs, "ConfigMap", base)
	if !ok {
		c.errorf("no ConfigMap %s", base)
		return
	}
	if len(cm.Data) != replicas {
		c.errorf("ConfigMap %s: got %d files, want one per pod (%d)", base, len(cm.Data), replicas)
	}
	for j := 0; j < replicas; j++ {
		pod := fmt.Sprintf("%s-%d", base, j)
		data, ok := cm.Data[pod+".yaml"]
		if !ok {
			c.errorf("ConfigMap %s: no %s.yaml for pod %s", base, pod, pod)
			continue
		}
		var cfg struct {
			Name string `json:"name"`
			TLS  struct {
				CertFile string `json:"cert_file"`
			} `json:"tls"`
		}
		if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
			c.errorf("ConfigMap %s: %s.yaml: %v", base, pod, err)
			continue
		}
		if cfg.Name != pod || cfg.TLS.CertFile != "/etc/cmg/tls/"+pod+".pem" {
			c.errorf("ConfigMap %s: %s.yaml has name %q and certificate %q, want its own identity %q", base, pod, cfg.Name, cfg.TLS.CertFile, pod)
		}
		c.compareShape("ConfigMap "+base+" "+pod+".yaml", data, "packaging/connector.yaml", shape)
	}
	if _, ok := find[policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget", base); !ok {
		c.errorf("no PodDisruptionBudget %s", base)
	}
}

func (c *checker) checkMonitoring(objs []object, dashboards int) {
	sm, ok := find[monitoringv1.ServiceMonitor](objs, "ServiceMonitor", release)
	if !ok {
		c.errorf("no ServiceMonitor %s", release)
	} else {
		scraped := 0
		for _, o := range objs {
			if o.kind == "Service" && matches(sm.Spec.Selector.MatchLabels, o.labels) {
				scraped++
				if !hasNamedPort(o.obj.(*corev1.Service), sm.Spec.Endpoints[0].Port) {
					c.errorf("Service %s: the ServiceMonitor scrapes port %q, which it lacks", o.name, sm.Spec.Endpoints[0].Port)
				}
			}
		}
		if scraped != 2 {
			c.errorf("ServiceMonitor %s: selects %d Services, want 2 (gateways and connectors)", release, scraped)
		}
	}
	got := 0
	for _, o := range objs {
		if o.kind != "ConfigMap" || o.labels["grafana_dashboard"] != "1" {
			continue
		}
		got++
		for k, v := range o.obj.(*corev1.ConfigMap).Data {
			var d struct {
				UID string `json:"uid"`
			}
			if err := json.Unmarshal([]byte(v), &d); err != nil || d.UID == "" {
				c.errorf("ConfigMap %s: %s is not a dashboard with a uid (%v)", o.name, k, err)
			}
		}
	}
	if got != dashboards {
		c.errorf("got %d dashboard ConfigMaps, want one per dashboards/grafana/*.json (%d)", got, dashboards)
	}
}

func (c *checker) compareShape(what, data, exampleName string, want map[string]string) {
	got, err := shapeOf([]byte(data))
	if err != nil {
		c.errorf("%s: %v", what, err)
		return
	}
	for _, k := range sortedKeys(want) {
		if g, ok := got[k]; !ok {
			c.errorf("%s: missing key %s, which %s has: add it to the chart's values.yaml", what, k, exampleName)
		} else if g != want[k] {
			c.errorf("%s: key %s is a %s, in %s a %s", what, k, g, exampleName, want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			c.errorf("%s: key %s is not in %s: renamed or removed? Update the chart's values.yaml", what, k, exampleName)
		}
	}
}

func readShape(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return shapeOf(data)
}

// shapeOf is a YAML document's key paths with their kinds (as the product's
// packaging test computes them): list elements merge under "[]".
func shapeOf(data []byte) (map[string]string, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if path != "" {
				out[path] = "mapping"
			}
			for k, e := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, e)
			}
		case []any:
			out[path] = "sequence"
			for _, e := range v {
				switch e.(type) {
				case map[string]any, []any:
					walk(path+"[]", e)
				}
			}
		default:
			if _, ok := out[path]; !ok {
				out[path] = "scalar"
			}
		}
	}
	walk("", doc)
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

func hasPort(svc *corev1.Service, port int) bool {
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == port {
			return true
		}
	}
	return false
}

// hasSamePort says whether svc forwards port to the same port of the pod (a
// gateway instance listens on its own tunnel ports).
func hasSamePort(svc *corev1.Service, port int) bool {
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == port && p.TargetPort.IntValue() == port {
			return true
		}
	}
	return false
}

func hasNamedPort(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
