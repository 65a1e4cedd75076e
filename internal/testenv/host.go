package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// LockCredentialsRedirect is the LockHost name for tests that install the
// host-wide nat OUTPUT redirect of 169.254.170.2:80 (host-network task
// roles): with two such rules for different listeners, the first one wins.
const LockCredentialsRedirect = "iptables-nat-output-169.254.170.2"

// LockHost holds a host-wide lock called name until the test ends. Tests of
// different packages run in parallel processes; those that change one piece
// of host state that cannot be made private to them (for example the nat
// OUTPUT redirect of 169.254.170.2, which every host process shares) take
// the same lock so they never see each other's rules.
func LockHost(t testing.TB, name string) {
	t.Helper()
	RequireRoot(t)
	path := filepath.Join(os.TempDir(), "berth-test-"+strings.NewReplacer("/", "_", " ", "_").Replace(name)+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("testenv: host lock %s: %v", name, err)
	}
	// Blocks while another test process holds it; the lock goes with the
	// process if that test crashes.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("testenv: host lock %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	})
}

// BuildStatic compiles the main package pkg (an import path, e.g.
// "github.com/berth-dev/berth/internal/testenv/cmd/credprobe") with
// CGO_ENABLED=0, so it runs in a test image with no libc, and returns the
// binary's contents.
func BuildStatic(t testing.TB, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(BuildBinary(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BuildBinary compiles the main package pkg (an import path, e.g.
// "github.com/berth-dev/berth/cmd/agent") with CGO_ENABLED=0 into the
// test's temporary directory and returns the binary's path: a test that
// runs a Berth program as a user does builds it from the tree it tests.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	RequireBinaries(t, "go")
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// NetworkRulesMentioning lists the iptables rules (nat and filter) and the
// nftables ruleset lines that contain any of names, such as a test agent's
// bridge and subnet: after the agent stopped with no task left, none may
// be left (credentials routes, host-port DNAT, the built-in datapath's
// nftables table and forward rules). Each line says where it was found.
func NetworkRulesMentioning(t testing.TB, names ...string) []string {
	t.Helper()
	RequireBinaries(t, "iptables-save", "nft")
	var found []string
	match := func(where, out string) {
		for _, line := range strings.Split(out, "\n") {
			for _, n := range names {
				if strings.Contains(line, n) {
					found = append(found, where+": "+strings.TrimSpace(line))
					break
				}
			}
		}
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		match("iptables "+table, string(out))
	}
	out, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		t.Fatalf("nft list ruleset: %v", err)
	}
	match("nftables", string(out))
	return found
}
