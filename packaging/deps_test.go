package packaging

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// programRE finds the programs the repository's Go code runs or asks for:
// testenv.RequireBinaries(t, "a", "b"), requireTool(t, "prog", ...) and
// exec.Command[Context](..., "prog", ...).
var (
	requireRE = regexp.MustCompile(`(?:RequireBinaries|requireTool)\(t, ((?:"[^"]+"(?:, )?)+)`)
	commandRE = regexp.MustCompile(`exec\.Command(?:Context\([^,"]+, |\()"([^"/-][^"]*)"`)
	quotedRE  = regexp.MustCompile(`"([^"]+)"`)
)

// TestDepsCoverTheTests checks that `scripts/deps.sh test`, what `make
// test` installs on a fresh machine, provides every program the tests and
// the code under test run: each such program found here must come from a
// package in the set or from one that every Debian system has (Essential
// or Priority required). The demo's set must be part of the test set.
func TestDepsCoverTheTests(t *testing.T) {
	root := repoRoot(t)
	testSet := strings.Fields(mustRun(t, root, nil, "./scripts/deps.sh", "--list", "test"))
	demoSet := strings.Fields(mustRun(t, root, nil, "./scripts/deps.sh", "--list", "demo"))
	for _, p := range demoSet {
		if !slices.Contains(testSet, p) {
			t.Errorf("the demo's package %s is not in the test set %q", p, testSet)
		}
	}
	// Which package brings a program only dpkg can say: without it (not a
	// Debian system) the test skips, and fails under CI=true.
	testenv.RequireBinaries(t, "dpkg-query")

	programs := map[string][]string{} // program -> files naming it
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Code only: comments may show calls as examples.
		var code []string
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "//") {
				code = append(code, line)
			}
		}
		src := strings.Join(code, "\n")
		rel, _ := filepath.Rel(root, path)
		for _, m := range requireRE.FindAllStringSubmatch(src, -1) {
			names := quotedRE.FindAllStringSubmatch(m[1], -1)
			if strings.Contains(m[0], "requireTool") {
				names = names[:1] // requireTool(t, program, package)
			}
			for _, n := range names {
				programs[n[1]] = append(programs[n[1]], rel)
			}
		}
		for _, m := range commandRE.FindAllStringSubmatch(src, -1) {
			programs[m[1]] = append(programs[m[1]], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"containerd", "docker-registry", "iptables-save", "rpm", "packer", "rsyslogd", "ip"} {
		if _, ok := programs[want]; !ok {
			t.Errorf("the scan of the sources missed %s; found %v", want, keys(programs))
		}
	}

	for _, prog := range keys(programs) {
		path, err := exec.LookPath(prog)
		if err != nil {
			// A program the code builds itself (go is the toolchain) or
			// one not installed here: only a machine that has it can say
			// which package brings it.
			t.Logf("%s (named in %s) is not on this machine's PATH; not checked", prog, strings.Join(programs[prog], ", "))
			continue
		}
		pkg := packageOf(t, path)
		if pkg == "" {
			t.Logf("%s: %s belongs to no Debian package (installed by hand); not checked", prog, path)
			continue
		}
		if slices.Contains(testSet, pkg) || baseSystem(t, pkg) {
			continue
		}
		t.Errorf("%s (named in %s) comes from Debian package %s, which scripts/deps.sh's test set %q lacks",
			prog, strings.Join(programs[prog], ", "), pkg, testSet)
	}
}

// packageOf returns the Debian package that installed path ("" if none).
func packageOf(t *testing.T, path string) string {
	t.Helper()
	candidates := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		candidates = append(candidates, real)
	}
	for _, p := range candidates {
		// Merged /usr: dpkg may know the file under /bin rather than /usr/bin.
		for _, q := range []string{p, strings.TrimPrefix(p, "/usr")} {
			out, err := exec.Command("dpkg-query", "--search", q).Output()
			if err != nil {
				continue
			}
			line, _, _ := strings.Cut(string(out), "\n")
			if pkg, _, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(pkg, "diversion by") {
				pkg, _, _ = strings.Cut(pkg, ",")
				pkg, _, _ = strings.Cut(pkg, ":") // multiarch qualifier
				return strings.TrimSpace(pkg)
			}
		}
	}
	return ""
}

// baseSystem reports whether every Debian system has pkg.
func baseSystem(t *testing.T, pkg string) bool {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--show", "--showformat=${Essential} ${Priority}", pkg).Output()
	if err != nil {
		t.Fatalf("dpkg-query --show %s: %v", pkg, err)
	}
	f := strings.Fields(string(out))
	return slices.Contains(f, "yes") || slices.Contains(f, "required")
}

func keys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
