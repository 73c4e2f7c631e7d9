package policies

import (
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package a leaf: no project package under appliance/
// except the error contract, and no net/http of its own.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/cmg-gateway/cmg/"
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(token.NewFileSet(), name, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.HasPrefix(path, "net/http"):
				t.Errorf("%s imports %s: the decision path holds no HTTP code", name, path)
			case strings.HasPrefix(path, module+"appliance/") && path != module+"appliance/httperror":
				t.Errorf("%s imports %s: policies is a leaf", name, path)
			}
		}
	}
}
