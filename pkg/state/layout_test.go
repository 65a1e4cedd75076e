package state

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyAPI keeps pkg/state free of business rules: of the Berth
// packages it may import pkg/api only.
func TestImportsOnlyAPI(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/berth-dev/berth/") && p != "github.com/berth-dev/berth/pkg/api" {
				t.Errorf("%s imports %s; pkg/state may import only pkg/api of the Berth packages", f, p)
			}
		}
	}
}
