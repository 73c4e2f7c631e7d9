package packaging

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// keyTree is the shape of a YAML document: every key path ("client.listen",
// "sites[].roles[].id") with the kind of its value. Sequence elements are
// merged under "[]", so a list's shape is the union of its elements' shapes.
type keyTree map[string]string

func readKeyTree(path string) (keyTree, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKeyTree(data)
}

func parseKeyTree(data []byte) (keyTree, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	t := keyTree{}
	if len(doc.Content) == 1 {
		t.add("", doc.Content[0])
	}
	return t, nil
}

func (t keyTree) add(path string, n *yaml.Node) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		if path != "" {
			t[path] = "mapping"
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if path != "" {
				k = path + "." + k
			}
			t.add(k, n.Content[i+1])
		}
	case yaml.SequenceNode:
		t[path] = "sequence"
		for _, e := range n.Content {
			// Only lists of mappings or lists have a shape below them; the
			// number and kind of scalar elements are values.
			if e.Kind == yaml.MappingNode || e.Kind == yaml.SequenceNode {
				t.add(path+"[]", e)
			}
		}
	default:
		if _, ok := t[path]; !ok {
			t[path] = "scalar"
		}
	}
}

// diffKeyTrees lists how got (an example file) differs from want (what the
// product writes), one line per key, naming the key and where it belongs.
// Optional keys (omitempty ones, and all below them, as optional says) may be
// in either or both: the demo turns on optional features that a production
// example leaves commented out, and the other way round.
func diffKeyTrees(gotName string, got keyTree, wantName string, want keyTree, optional func(path string) bool) []string {
	var out []string
	for _, p := range sortedKeys(want) {
		g, ok := got[p]
		switch {
		case !ok && optional(p):
		case !ok:
			out = append(out, fmt.Sprintf("%s: missing key %s (%s has it%s): add it, with a comment, to %s",
				gotName, p, wantName, under(p), gotName))
		case g != want[p]:
			out = append(out, fmt.Sprintf("%s: key %s is a %s, but in %s it is a %s", gotName, p, g, wantName, want[p]))
		}
	}
	for _, p := range sortedKeys(got) {
		if _, ok := want[p]; !ok && !optional(p) {
			out = append(out, fmt.Sprintf("%s: key %s is not in %s: renamed or removed? Update %s (or comment the key out if it is optional and left out by default)",
				gotName, p, wantName, gotName))
		}
	}
	return out
}

func under(p string) string {
	i := strings.LastIndexByte(p, '.')
	if i < 0 {
		return ", at the top level"
	}
	return ", under " + p[:i]
}

func sortedKeys(t keyTree) []string {
	ks := make([]string, 0, len(t))
	for k := range t {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// optionalIn returns whether a key path of a YAML document decoded into a value
// of type t is optional: it is, or lies below, a struct field tagged omitempty.
// Unknown paths are not optional (strict decoding refuses them anyway).
func optionalIn(t reflect.Type) func(path string) bool {
	return func(path string) bool {
		typ := t
		for _, seg := range splitPath(path) {
			for typ.Kind() == reflect.Pointer {
				typ = typ.Elem()
			}
			switch {
			case seg == "[]":
				if typ.Kind() != reflect.Slice && typ.Kind() != reflect.Array {
					return false
				}
				typ = typ.Elem()
			case typ.Kind() == reflect.Map:
				typ = typ.Elem()
			case typ.Kind() == reflect.Struct:
				f, ok := fieldByYAMLName(typ, seg)
				if !ok {
					return false
				}
				if strings.Contains(f.Tag.Get("yaml"), ",omitempty") {
					return true
				}
				typ = f.Type
			default:
				return false
			}
		}
		return false
	}
}

// splitPath splits "sites[].roles[].id" into sites, [], roles, [], id.
func splitPath(path string) []string {
	var segs []string
	for _, part := range strings.Split(path, ".") {
		n := 0
		for strings.HasSuffix(part, "[]") {
			part = strings.TrimSuffix(part, "[]")
			n++
		}
		segs = append(segs, part)
		for ; n > 0; n-- {
			segs = append(segs, "[]")
		}
	}
	return segs
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == name {
			return f, true
		}
		if tag == "" && strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
