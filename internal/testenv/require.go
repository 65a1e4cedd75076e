package testenv

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// installHint is appended to every skip or failure caused by a missing
// dependency so the reader knows the one command that fixes it.
const installHint = "run `sudo make test-deps` (scripts/test-deps.sh) to install the test dependencies"

// InCI reports whether the tests run under CI (CI=true), where a missing
// dependency is a failure instead of a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// missing stops the test because a dependency is absent: a failure under CI,
// a skip elsewhere.
func missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("testenv: missing dependency under CI=true: %s", what)
	}
	t.Skipf("testenv: skipping, missing dependency: %s; %s", what, installHint)
}

// RequireRoot stops the test unless it runs as root: Fatal under CI=true,
// Skip elsewhere.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, fmt.Sprintf("root privileges (running as uid %d); run the tests as root", os.Geteuid()))
	}
}

// RequireBinaries stops the test unless every named program is found in
// PATH (or at the given absolute path): Fatal under CI=true, Skip elsewhere.
func RequireBinaries(t testing.TB, names ...string) {
	t.Helper()
	if absent := missingBinaries(names...); len(absent) > 0 {
		missing(t, "programs not found in PATH: "+strings.Join(absent, ", "))
	}
}

// missingBinaries returns the names of the programs that cannot be found.
func missingBinaries(names ...string) []string {
	var absent []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			absent = append(absent, n)
		}
	}
	return absent
}

// busyboxPath is where Debian's busybox-static package installs the binary.
const busyboxPath = "/bin/busybox"

// checkStaticBusybox verifies that path is a statically linked ELF binary;
// the dynamically linked busybox package installs the same path but would
// not run inside an image without a libc.
func checkStaticBusybox(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("open %s (package busybox-static): %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; install the busybox-static package", path)
		}
	}
	return nil
}

// RequireBusyboxStatic stops the test unless /bin/busybox is the statically
// linked busybox of the busybox-static package (needed by BuildImage).
func RequireBusyboxStatic(t testing.TB) {
	t.Helper()
	if err := checkStaticBusybox(busyboxPath); err != nil {
		missing(t, err.Error())
	}
}
