package network

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// freshRunEnv names the variable that tells a test binary it is the child
// of inFreshRun; its value is the test to run there.
const freshRunEnv = "BERTH_NETWORK_FRESH_RUN"

// inFreshRun runs the calling test again in a child process that has a
// mount namespace of its own, in which /run is an empty tmpfs: the host as
// it is after a boot, before anything made /run/netns a mount point. The
// real `ip` the test runs sees the same /run, and nothing the test mounts
// there reaches the host. It returns true in the child, which runs the
// test's body; in the parent it waits for the child, fails the test with
// the child's output if the child failed, and returns false.
func inFreshRun(t *testing.T) bool {
	t.Helper()
	if os.Getenv(freshRunEnv) == t.Name() {
		if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			t.Fatalf("mount a fresh /run: %v", err)
		}
		return true
	}
	requireHost(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), freshRunEnv+"="+t.Name())
	// Go makes the child's mounts private (MS_REC|MS_PRIVATE on /) after
	// unsharing, so nothing propagates back to the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a fresh /run: %v\n%s", t.Name(), err, out)
	}
	return false
}

// ipNetnsAdd runs the real `ip netns add` as an administrator would, and
// removes that namespace again when the test ends.
func ipNetnsAdd(t *testing.T, name string) {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
}

// assertIPNetnsWorks checks that someone else's namespace still works
// through its path after Berth removed its own.
func assertIPNetnsWorks(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "show", "lo").CombinedOutput(); err != nil {
		t.Fatalf("`ip netns exec %s` after Berth removed its namespaces: %v\n%s", name, err, out)
	}
}

// TestSandboxSurvivesIPNetnsAdd: an administrator runs `ip netns add` while
// the agent has sandboxes (on a host where /run/netns was not a mount point
// yet). ip then mounts /run/netns over itself; Berth's namespace must still
// be usable and removable, and the administrator's namespace must survive
// Berth's teardown. On each datapath: the built-in one opens the namespace
// by its path for netlink, the CNI plugins enter it by its path.
func TestSandboxSurvivesIPNetnsAdd(t *testing.T) {
	eachDatapath(t, func(t *testing.T, dp Datapath, off int) {
		if !inFreshRun(t) {
			return
		}
		tn := newTestNetOn(t, "ipadd", 20+off, dp)
		tn.opts.NetnsDir = DefaultNetnsDir
		m := tn.manager(t)
		before := snapshot(t, tn)
		sb, err := m.Setup(bg(), SetupRequest{Ports: []PortRequest{{ContainerPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		admin := fmt.Sprintf("admin-ns-%d", 20+off)
		ipNetnsAdd(t, admin)
		if !isNetns(sb.NetnsPath) {
			t.Fatalf("after `ip netns add`, %s is no longer a namespace", sb.NetnsPath)
		}
		// The sandbox still has its address and route: the namespace the
		// path names now is the one that was wired.
		out := run(t, "nsenter", "--net="+sb.NetnsPath, "ip", "-o", "-4", "addr", "show", IfName)
		if !strings.Contains(out, sb.IP+"/") {
			t.Fatalf("after `ip netns add`, %s has no %s in %s:\n%s", IfName, sb.IP, sb.NetnsPath, out)
		}
		if err := m.Teardown(bg(), *sb); err != nil {
			t.Fatalf("teardown after `ip netns add`: %v", err)
		}
		if _, err := os.Stat(sb.NetnsPath); !os.IsNotExist(err) {
			t.Fatalf("netns file %s still there after teardown (%v)", sb.NetnsPath, err)
		}
		assertNotMounted(t, sb.NetnsPath)
		assertIPNetnsWorks(t, admin)
		if after := snapshot(t, tn); before.String() != after.String() {
			t.Fatalf("teardown left state behind:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// TestRemoveNetnsHiddenByIPNetnsAdd: a namespace made the way Berth made
// them before /run/netns was made shared (a bind mount in a plain
// directory), then `ip netns add`, which mounts /run/netns over itself and
// so hides the first mount under a copy. Removing the namespace must
// succeed, free the namespace, and leave the other namespace working.
func TestRemoveNetnsHiddenByIPNetnsAdd(t *testing.T) {
	if !inFreshRun(t) {
		return
	}
	if err := os.MkdirAll(DefaultNetnsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(DefaultNetnsDir, "bt21-before-the-fix")
	// util-linux's unshare bind-mounts the new namespace at the file and
	// does nothing to the directory, as CreateNetns did before the fix.
	if err := os.WriteFile(old, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	run(t, "unshare", "--net="+old, "true")
	ipNetnsAdd(t, "admin-ns-21")
	if err := RemoveNetns(old); err != nil {
		t.Fatalf("remove a namespace hidden by `ip netns add`: %v", err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("netns file %s still there (%v)", old, err)
	}
	assertNotMounted(t, old)
	assertIPNetnsWorks(t, "admin-ns-21")
}

// assertNotMounted fails if any mount, hidden or not, is still at path.
func assertNotMounted(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			t.Errorf("still mounted at %s: %s", path, line)
		}
	}
}
