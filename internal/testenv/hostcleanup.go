package testenv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Host-wide places that containerd 1.6's runc shim uses whatever containerd's
// own root and state are: runc keeps container state under runcRoot/<ns>,
// shims listen on sockets in shimSocketDir, and containers get the cgroup
// /<ns>/<id>. A normal task delete removes the per-container entries but
// leaves the per-namespace directories; a killed shim leaves everything.
const (
	runcRoot      = "/run/containerd/runc"
	shimSocketDir = "/run/containerd/s"
	cgroupRoot    = "/sys/fs/cgroup"
)

// containerRef names one container of a namespace.
type containerRef struct{ ns, id string }

func (r containerRef) String() string { return r.ns + "/" + r.id }

// shimRef reads the namespace and container id from a shim's arguments
// ("-namespace NS -id ID -address ...").
func shimRef(args []string) (containerRef, bool) {
	if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
		return containerRef{}, false
	}
	var r containerRef
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-namespace", "--namespace":
			r.ns = args[i+1]
		case "-id", "--id":
			r.id = args[i+1]
		}
	}
	return r, r.ns != "" && r.id != ""
}

// shimSocketPath is where the shim of ref, started by the containerd at
// address, listens (runtime/v2/shim.SocketAddress).
func shimSocketPath(address string, ref containerRef) string {
	return filepath.Join(shimSocketDir, fmt.Sprintf("%x", sha256.Sum256([]byte(filepath.Join(address, ref.ns, ref.id)))))
}

// forceDeleteRunc kills the container's processes and removes its runc state
// and cgroup, as the shim would have done on a clean delete.
func forceDeleteRunc(ref containerRef) error {
	if _, err := os.Stat(filepath.Join(runcRoot, ref.ns, ref.id)); err != nil {
		return nil
	}
	out, err := exec.Command("runc", "--root", filepath.Join(runcRoot, ref.ns), "delete", "--force", ref.id).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") {
		return fmt.Errorf("runc delete --force %s: %w: %s", ref, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// cgroupDirs returns the directories a cgroup path maps to: one under
// cgroup v2, one per mounted hierarchy under v1.
func cgroupDirs(rel string) []string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(cgroupRoot, rel)}
	}
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		// cpu and cpuacct are often symlinks to "cpu,cpuacct"; the
		// duplicate rmdir then just finds nothing.
		out = append(out, filepath.Join(cgroupRoot, e.Name(), rel))
	}
	return out
}

// removeNamespaceDirs removes the empty per-namespace directories that runc
// leaves: its state directory and the namespace's parent cgroups. It only
// ever uses rmdir, so a directory still in use (by another containerd that
// shares the name) stays. Busy cgroups are retried briefly because the
// kernel frees them a moment after the last process is reaped.
func removeNamespaceDirs(ns string) error {
	if ns == "" || ns == "." || ns == ".." || strings.Contains(ns, "/") {
		return fmt.Errorf("refusing odd namespace name %q", ns)
	}
	dirs := append([]string{filepath.Join(runcRoot, ns)}, cgroupDirs(ns)...)
	var errs []error
	for _, d := range dirs {
		var err error
		for attempt := 0; attempt < 100; attempt++ {
			removeTaskCgroups(d)
			err = os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// removeTaskCgroups removes (rmdir only) the task cgroups below a
// namespace's cgroup: pkg/runtime's /<ns>/task-<id> outlive their
// containers until the agent's task clean-up, which a test's end does not
// wait for. A busy one stays, and so does the namespace's.
func removeTaskCgroups(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "task-") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// hostLeftovers describes what is left on the host of the given containers.
func hostLeftovers(address string, refs []containerRef) []string {
	var out []string
	for _, r := range refs {
		paths := []string{filepath.Join(runcRoot, r.ns, r.id), shimSocketPath(address, r)}
		paths = append(paths, cgroupDirs(filepath.Join(r.ns, r.id))...)
		for _, p := range paths {
			if _, err := os.Lstat(p); err == nil {
				out = append(out, fmt.Sprintf("container %s: %s", r, p))
			}
		}
	}
	return out
}

// killShims force-deletes the containers of every shim that still refers to
// dir, kills the shims and everything below them, and removes their sockets.
// It returns the containers it found.
func killShims(dir, address string) ([]containerRef, error) {
	procs, err := procsReferencing(dir)
	if err != nil {
		return nil, err
	}
	var refs []containerRef
	var errs []error
	for _, p := range procs {
		if r, ok := shimRef(p.args); ok {
			refs = append(refs, r)
			if err := forceDeleteRunc(r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := killProcsReferencing(dir); err != nil {
		errs = append(errs, err)
	}
	for _, r := range refs {
		if err := os.Remove(shimSocketPath(address, r)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove shim socket of %s: %w", r, err))
		}
	}
	return refs, errors.Join(errs...)
}
