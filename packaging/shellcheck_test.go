package packaging

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// shebangRE matches the interpreters shellcheck understands.
var shebangRE = regexp.MustCompile(`^#!\s*(/usr)?/bin/(env\s+)?(sh|bash|dash|ksh)\b`)

// shellScripts lists the repository's shell scripts: tracked and new
// (not ignored) files named *.sh or starting with a shell shebang.
func shellScripts(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	out := mustRun(t, root, nil, "git", "ls-files", "--cached", "--others", "--exclude-standard")
	var scripts []string
	for _, name := range strings.Split(strings.TrimSpace(out), "\n") {
		if name == "" {
			continue
		}
		if strings.HasSuffix(name, ".sh") || hasShellShebang(filepath.Join(root, name)) {
			if _, err := os.Stat(filepath.Join(root, name)); err == nil { // listed but deleted
				scripts = append(scripts, name)
			}
		}
	}
	return scripts
}

func hasShellShebang(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	return shebangRE.MatchString(line)
}

// TestShellcheck runs shellcheck over every shell script in the repository.
func TestShellcheck(t *testing.T) {
	shellcheck := requireTool(t, "shellcheck", "shellcheck")
	scripts := shellScripts(t)
	for _, want := range []string{"scripts/package.sh", "packaging/agent/postinst.sh", "lab/provision/agent.sh"} {
		if !slices.Contains(scripts, want) {
			t.Errorf("script discovery missed %s; found %q", want, scripts)
		}
	}
	args := append([]string{"--external-sources"}, scripts...)
	if out, err := runCmd(t.Context(), repoRoot(t), nil, shellcheck, args...); err != nil {
		t.Errorf("shellcheck found problems:\n%s", out)
	}

	// shellcheck must report a known problem, or a clean run proves nothing.
	bad := filepath.Join(t.TempDir(), "bad.sh")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\nrm -rf $1/data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t.Context(), "", nil, shellcheck, bad); err == nil || !strings.Contains(out, "SC2086") {
		t.Errorf("shellcheck passed an unquoted $1 (want SC2086): err=%v\n%s", err, out)
	}
}
