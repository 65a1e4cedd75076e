package layout

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// identRule forbids the non-test Go files of one package to use some
// identifiers of another package: for seams an import rule cannot express,
// because the package needs other things of that import.
type identRule struct {
	why   string
	dir   string // module-relative directory of the package checked
	pkg   string // module-relative import path of the package whose names are forbidden
	names []string
}

func identRules() []identRule {
	health := []string{"TaskHealth", "ContainerHealth", "PublishHealthRequest", "HealthMetadata"}
	return []identRule{
		{why: "the agent hands health over in pkg/container's neutral types; pkg/registration alone maps it onto the TCS wire types",
			dir: "pkg/agent", pkg: "pkg/api", names: health},
		{why: "the engine reports health in pkg/container's neutral types (Engine.TaskHealth); pkg/registration alone maps it onto the TCS wire types",
			dir: "pkg/engine", pkg: "pkg/api", names: health},
		{why: "the network's port allocator persists through *state.DB as it is (container.PortAllocation): no agent adapter on the way of every allocation",
			dir: "pkg/agent", pkg: "pkg/network", names: []string{"PortStore"}},
	}
}

// identViolations returns one line per use of a name r forbids in the Go
// source src of file.
func identViolations(file string, src []byte, r identRule) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	// The names the file gives the import (a file may import it twice).
	var locals []string
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil || p != module+"/"+r.pkg {
			continue
		}
		local := path.Base(p)
		if imp.Name != nil {
			local = imp.Name.Name
		}
		locals = append(locals, local)
	}
	if len(locals) == 0 {
		return nil, nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && slices.Contains(locals, x.Name) && slices.Contains(r.names, sel.Sel.Name) {
			out = append(out, fmt.Sprintf("%s uses %s.%s: %s", fset.Position(sel.Pos()), r.pkg, sel.Sel.Name, r.why))
		}
		return true
	})
	return out, nil
}

func TestIdentifierRules(t *testing.T) {
	for _, r := range identRules() {
		files, err := filepath.Glob(filepath.Join("../..", r.dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", r.dir, err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := identViolations(file, src, r)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				t.Error(v)
			}
		}
	}
}

// TestIdentifierRulesCatchViolations proves each identifier rule fires on
// a file that breaks it (under the import's own name and an alias) and
// stays quiet on one that uses other names of the same import.
func TestIdentifierRulesCatchViolations(t *testing.T) {
	for _, r := range identRules() {
		bad := fmt.Sprintf("package x\n\nimport (\n\t\"%[1]s/%[2]s\"\n\twire %[3]q\n)\n\nvar a []*%[4]s.%[5]s\nvar b = wire.%[5]s{}\n",
			module, r.pkg, module+"/"+r.pkg, path.Base(r.pkg), r.names[0])
		got, err := identViolations("bad.go", []byte(bad), r)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"bad.go:8:", "bad.go:9:"} { // plain name, alias
			if !slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, line) }) {
				t.Errorf("%s: rule %q did not fire at %s: %v", r.dir, r.why, line, got)
			}
		}
		good := fmt.Sprintf("package x\n\nimport %q\n\nvar a %s.StateChange\n", module+"/"+r.pkg, path.Base(r.pkg))
		if got, err := identViolations("good.go", []byte(good), r); err != nil || len(got) != 0 {
			t.Errorf("%s: rule fires on a file that follows it: %v %v", r.dir, got, err)
		}
	}
}
