package testenv

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestUnescapeMountinfo(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/tmp/plain", "/tmp/plain"},
		{`/tmp/with\040space`, "/tmp/with space"},
		{`/tmp/tab\011and\134backslash`, "/tmp/tab\tand\\backslash"},
		{`/tmp/trailing\04`, `/tmp/trailing\04`},
	} {
		if got := unescapeMountinfo(c.in); got != c.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDescendants(t *testing.T) {
	all := []proc{{pid: 10, ppid: 1}, {pid: 11, ppid: 10}, {pid: 12, ppid: 11}, {pid: 13, ppid: 1}, {pid: 14, ppid: 10}}
	got := descendants(all, []int{10})
	want := []int{11, 14, 12}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("descendants of 10 = %v, want %v (breadth first)", got, want)
	}
	if got := descendants(all, []int{13}); len(got) != 0 {
		t.Fatalf("descendants of a leaf = %v, want none", got)
	}
}

// TestProcsReferencingFindsChild starts a process whose argument names a
// directory and checks the leftover scan sees it, so the teardown check is
// not blind.
func TestProcsReferencingFindsChild(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "sleep 60; true", marker}, &os.ProcAttr{})
	if err != nil {
		t.Skipf("cannot start /bin/sh: %v", err)
	}
	defer func() { _ = p.Kill(); _, _ = p.Wait() }() // only if the kill below was not reached
	got, err := procsReferencing(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].pid != p.Pid {
		t.Fatalf("procsReferencing(%s) = %v, want only pid %d", dir, got, p.Pid)
	}
	if left := leftoversUnder(dir); len(left) != 2 {
		t.Fatalf("leftoversUnder = %v, want the process and the directory", left)
	}
	// killProcsReferencing takes the shell and its sleep child.
	killed, err := killProcsReferencing(dir)
	if err != nil || len(killed) != 1 {
		t.Fatalf("killProcsReferencing = %v, %v; want the shell", killed, err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatalf("wait for killed shell: %v", err)
	}
	if got, _ := procsReferencing(dir); len(got) != 0 {
		t.Fatalf("still referencing %s after kill: %v", dir, got)
	}
}

func TestNoMountsUnderFreshDir(t *testing.T) {
	mps, err := mountsUnder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(mps) != 0 {
		t.Fatalf("mounts under a fresh temp dir: %v", mps)
	}
	root, err := mountsUnder("/")
	if err != nil || len(root) == 0 {
		t.Fatalf("mountsUnder(/) = %v, %v; want at least the root mount", root, err)
	}
}

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "TRUE": true, "1": true, "": false, "false": false, "0": false} {
		t.Setenv("CI", v)
		if got := InCI(); got != want {
			t.Errorf("CI=%q: InCI() = %v, want %v", v, got, want)
		}
	}
}

// recorder stands in for a test to see how a missing dependency is
// reported; only the first report counts, as the real Fatal/Skip would stop
// the test there.
type recorder struct {
	testing.TB
	kind, msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	if r.kind == "" {
		r.kind, r.msg = "fatal", fmt.Sprintf(format, args...)
	}
}
func (r *recorder) Skipf(format string, args ...any) {
	if r.kind == "" {
		r.kind, r.msg = "skip", fmt.Sprintf(format, args...)
	}
}

func TestMissingDependencyFailsUnderCISkipsElsewhere(t *testing.T) {
	const absent = "berth-no-such-program"
	for _, c := range []struct {
		ci       string
		wantKind string
		wantText string
	}{
		{"true", "fatal", "CI=true"},
		{"", "skip", "make test-deps"},
	} {
		t.Setenv("CI", c.ci)
		r := &recorder{TB: t}
		RequireBinaries(r, "sh", absent)
		if r.kind != c.wantKind || !strings.Contains(r.msg, absent) || !strings.Contains(r.msg, c.wantText) {
			t.Errorf("CI=%q: got %s %q, want %s naming %s and %q", c.ci, r.kind, r.msg, c.wantKind, absent, c.wantText)
		}
		r = &recorder{TB: t}
		RequireBinaries(r, "sh")
		if r.kind != "" {
			t.Errorf("CI=%q: present program reported as %s: %s", c.ci, r.kind, r.msg)
		}
	}
}

func TestShimRefAndSocketPath(t *testing.T) {
	args := []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "ns1", "-id", "c1", "-address", "/tmp/x/containerd.sock"}
	r, ok := shimRef(args)
	if !ok || r != (containerRef{ns: "ns1", id: "c1"}) {
		t.Fatalf("shimRef = %v, %v; want ns1/c1", r, ok)
	}
	if _, ok := shimRef([]string{"/usr/bin/containerd", "-namespace", "x", "-id", "y"}); ok {
		t.Fatal("shimRef accepted a non-shim process")
	}
	// The same formula as containerd's runtime/v2/shim.SocketAddress.
	want := "/run/containerd/s/" + fmt.Sprintf("%x", sha256.Sum256([]byte("/tmp/x/containerd.sock/ns1/c1")))
	if got := shimSocketPath("/tmp/x/containerd.sock", r); got != want {
		t.Fatalf("shimSocketPath = %s, want %s", got, want)
	}
}
