package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// repoRoot is the repository's top directory (this package's parent).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Dir(filepath.Dir(file))
}

// requireTool makes program available: under CI=true a missing program is
// installed from Debian package pkg (and the test fails if that fails);
// elsewhere the test is skipped with the command that installs it.
func requireTool(t *testing.T, program, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(program); err == nil {
		return path
	}
	if !testenv.InCI() {
		t.Skipf("skipping: %s not found; install it with `apt-get install %s` (CI=true installs it)", program, pkg)
	}
	testenv.RequireRoot(t)
	out, err := runCmd(t.Context(), "", nil, "apt-get", "-o", "DPkg::Lock::Timeout=300",
		"install", "-y", "--no-install-recommends", pkg)
	if err != nil {
		t.Fatalf("CI=true: %s is missing and `apt-get install %s` failed: %v\n%s", program, pkg, err, out)
	}
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("CI=true: installed %s but %s is still not in PATH", pkg, program)
	}
	return path
}

// runCmd runs a program and returns its combined output.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// mustRun runs a program and fails the test, printing its output, if it fails.
func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(t.Context(), dir, env, name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}
