package runtime

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStayNeutral keeps pkg/runtime and pkg/logs free of ECS and of
// agent packages above them: the runtime may use pkg/logs and nothing else
// of Berth, and neither may reach the AWS SDK or the ECS wire types.
func TestImportsStayNeutral(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	allowed := map[string][]string{
		"github.com/berth-dev/berth/pkg/runtime": {"github.com/berth-dev/berth/pkg/logs"},
		"github.com/berth-dev/berth/pkg/logs":    nil,
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			switch {
			case dep == pkg:
			case strings.HasPrefix(dep, "github.com/berth-dev/berth/"):
				found := false
				for _, a := range ok {
					found = found || dep == a
				}
				if !found {
					t.Errorf("%s imports %s", pkg, dep)
				}
			case strings.HasPrefix(dep, "github.com/aws/"):
				t.Errorf("%s imports %s: the runtime knows nothing of AWS", pkg, dep)
			}
		}
	}
}
