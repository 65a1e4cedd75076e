package api

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNoBerthPackage keeps pkg/api at the bottom of the layout: every
// other Berth package may import it, so it imports none of them.
func TestImportsNoBerthPackage(t *testing.T) {
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
			if strings.HasPrefix(p, "github.com/berth-dev/berth/") {
				t.Errorf("%s imports %s; pkg/api must not import other Berth packages", f, p)
			}
			// The ECS API codec (ecs_*.go, the endpoint's) may need HTTP
			// types; the ACS and task model files need nothing that does I/O.
			if !strings.HasPrefix(f, "ecs_") && (p == "os" || p == "net/http" || p == "net") {
				t.Errorf("%s imports %s; pkg/api does no I/O", f, p)
			}
		}
	}
}
