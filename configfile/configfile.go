// Package configfile loads cmg's YAML files strictly: an unknown key, a bad value or
// a missing file is an error that names the key and its line, and every problem
// found is reported at once, so an operator fixes a file in one pass.
//
// A package that owns a configuration section defines its Config type with yaml
// tags, a DefaultConfig constructor and a Validate method that collects Problems.
// Load decodes over the defaults (keys the file leaves out keep their default) and
// then runs Validate, resolving each problem's key path to its line in the file.
package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Validator is implemented by configuration types that check themselves after
// decoding. Validate returns nil or a *Problems error listing every problem.
type Validator interface {
	Validate() error
}

// Problem is one thing wrong with a configuration: the key path ("sites[0].name"),
// the line it is on (0 when unknown) and what is wrong.
type Problem struct {
	Path string
	Line int
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems collects validation problems. The zero value is ready to use; Err returns
// nil when nothing was added.
type Problems struct {
	File string
	List []Problem
}

// Addf records a problem with the key at path.
func (p *Problems) Addf(path, format string, args ...any) {
	p.List = append(p.List, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Merge adds the problems of err (a *Problems, or any error as one problem) under
// the key prefix, so a parent Config can collect its children's problems.
func (p *Problems) Merge(prefix string, err error) {
	if err == nil {
		return
	}
	var ps *Problems
	if !errors.As(err, &ps) {
		p.Addf(prefix, "%v", err)
		return
	}
	for _, q := range ps.List {
		q.Path = joinPath(prefix, q.Path)
		p.List = append(p.List, q)
	}
}

// Err returns p as an error, or nil when it holds no problem.
func (p *Problems) Err() error {
	if p == nil || len(p.List) == 0 {
		return nil
	}
	return p
}

func (p *Problems) Error() string {
	var b strings.Builder
	name := p.File
	if name == "" {
		name = "config"
	}
	if len(p.List) == 1 {
		fmt.Fprintf(&b, "%s: %s", name, p.List[0])
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %d problems:", name, len(p.List))
	for _, q := range p.List {
		b.WriteString("\n  ")
		b.WriteString(q.String())
	}
	return b.String()
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

// Load reads the file at path and decodes it into dst (a pointer, usually already
// holding the defaults), then validates it. See Decode.
func Load(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, data, dst)
}

// Decode decodes one YAML document strictly into dst and, when dst implements
// Validator, validates it. Errors are *Problems with lines filled in.
func Decode(name string, data []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return &Problems{File: name, List: []Problem{{Msg: "the file is empty"}}}
		}
		return decodeProblems(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return &Problems{File: name, List: []Problem{{Line: extra.Line, Msg: "only one YAML document is allowed"}}}
	}
	v, ok := dst.(Validator)
	if !ok {
		return nil
	}
	err := v.Validate()
	if err == nil {
		return nil
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	ps := &Problems{File: name}
	ps.Merge("", err)
	for i := range ps.List {
		if ps.List[i].Line == 0 {
			ps.List[i].Line = LineOf(&root, ps.List[i].Path)
		}
	}
	return ps
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decodeProblems turns a yaml decode error into Problems, one per reported error.
func decodeProblems(name string, err error) error {
	ps := &Problems{File: name}
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			n, _ := strconv.Atoi(g[1])
			ps.List = append(ps.List, Problem{Line: n, Msg: g[2]})
			continue
		}
		ps.List = append(ps.List, Problem{Msg: strings.TrimPrefix(m, "yaml: ")})
	}
	return ps
}

// LineOf returns the line of the key at path ("a.b[2].c") in the document, or of its
// nearest existing parent, or 0.
func LineOf(doc *yaml.Node, path string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range splitPath(path) {
		if n == nil {
			break
		}
		switch {
		case part.index >= 0:
			if n.Kind != yaml.SequenceNode || part.index >= len(n.Content) {
				return line
			}
			n = n.Content[part.index]
			line = n.Line
		default:
			if n.Kind != yaml.MappingNode {
				return line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part.key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				if line == 0 {
					line = n.Line
				}
				return line
			}
			n = next
		}
	}
	return line
}

type pathPart struct {
	key   string
	index int
}

func splitPath(path string) []pathPart {
	var parts []pathPart
	for _, seg := range strings.Split(path, ".") {
		for seg != "" {
			i := strings.IndexByte(seg, '[')
			if i < 0 {
				parts = append(parts, pathPart{key: seg, index: -1})
				break
			}
			if i > 0 {
				parts = append(parts, pathPart{key: seg[:i], index: -1})
			}
			j := strings.IndexByte(seg[i:], ']')
			if j < 0 {
				break
			}
			n, err := strconv.Atoi(seg[i+1 : i+j])
			if err == nil {
				parts = append(parts, pathPart{index: n})
			}
			seg = seg[i+j+1:]
		}
	}
	return parts
}

// Marshal encodes v as YAML with two-space indentation, the form cmg writes its
// generated configuration files in.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
