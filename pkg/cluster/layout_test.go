package cluster_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayout enforces DESIGN.md: the endpoint imports no agent
// package except pkg/api, and nothing but cmd and dev mode reads its config.
func TestImportLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/berth-dev/berth/pkg/cluster/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		rest, ok := strings.CutPrefix(p, "github.com/berth-dev/berth/")
		if !ok {
			continue
		}
		switch {
		case rest == "pkg/api", rest == "pkg/cluster", strings.HasPrefix(rest, "pkg/cluster/"):
		default:
			t.Errorf("pkg/cluster/... depends on %s; it may import only pkg/api and its own packages", p)
		}
	}
	out, err = exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/berth-dev/berth/pkg/cluster").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "github.com/berth-dev/berth/pkg/cluster/config\n") {
		t.Errorf("pkg/cluster imports pkg/cluster/config; only cmd/cluster may")
	}
}
