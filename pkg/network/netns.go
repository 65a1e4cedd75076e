package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// newSandboxID returns prefix followed by 16 random hex digits. The result is
// a valid CNI container ID and a valid netns file name.
func newSandboxID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// CreateNetns creates a new network namespace and keeps it alive by
// bind-mounting it at dir/name, the way `ip netns add` does, so that
// containers and CNI plugins can join it by path and it outlives this
// process. Like `ip netns add` (and CNI's and containerd's helpers) it first
// makes dir a shared mount point, binding it onto itself if it is not a
// mount point yet: otherwise the next `ip netns add` on the host does that
// bind, which copies the namespaces mounted so far and hides the originals
// under the copy, where nothing can unmount them. It returns the path.
// Setup uses it; it is exported for tests and benchmarks that need a
// namespace of their own.
func CreateNetns(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create netns dir %s: %w", dir, err)
	}
	if err := ensureSharedDir(dir); err != nil {
		return "", err
	}
	unlock, err := lockNetnsDir(dir, unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer unlock()
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close netns file %s: %w", path, err)
	}

	// unshare changes the calling thread only; onNetnsThread gives it a
	// thread of its own and moves that thread back afterwards.
	err = onNetnsThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns: %w", err)
		}
		return nil
	}, func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount netns at %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		_ = removeNetnsLocked(dir, path)
		return "", err
	}
	return path, nil
}

// makeShared makes the mount at dir, and every mount below it, shared. It
// fails with EINVAL when dir is not a mount point.
func makeShared(dir string) error {
	return unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// ensureSharedDir makes dir a shared mount point, as `ip netns add` does:
// mount propagation then reaches the copies of dir in other mount
// namespaces, and nobody binds dir onto itself over our mounts later. A
// directory that is already one (the agent's earlier runs, `ip`, other
// runtimes) only has its propagation set, which is one system call.
func ensureSharedDir(dir string) error {
	err := makeShared(dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make netns dir %s a shared mount: %w", dir, err)
	}
	// Two agents (or goroutines) must not both bind it: the second bind
	// would hide what was created under the first.
	unlock, err := lockNetnsDir(dir, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if err := makeShared(dir); err == nil {
		return nil
	}
	// MS_REC copies the namespaces mounted there already (by an earlier
	// version), so they stay reachable by path; RemoveNetns finds the
	// originals under the copies.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount netns dir %s onto itself: %w", dir, err)
	}
	if err := makeShared(dir); err != nil {
		return fmt.Errorf("make netns dir %s a shared mount: %w", dir, err)
	}
	return nil
}

// lockNetnsDir takes a flock, shared or exclusive, that the agents on this
// host take around changes to the mounts in dir: creating and removing a
// namespace take it shared; binding dir onto itself and moving a mount of
// dir aside to reach a hidden namespace take it exclusive. The lock file is
// next to dir (a file in dir would be listed as a namespace).
func lockNetnsDir(dir string, how int) (unlock func(), err error) {
	path := filepath.Join(filepath.Dir(dir), ".berth-"+filepath.Base(dir)+".lock")
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open netns lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// ReleaseNetnsDir undoes what CreateNetns did to a directory of the
// caller's own (tests and benchmarks; never the shared /run/netns): it
// unmounts the bind of dir onto itself and removes dir. It fails if a
// namespace is still mounted there.
func ReleaseNetnsDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release netns dir: %w", err)
	}
	for _, e := range entries {
		if isNetns(filepath.Join(dir, e.Name())) {
			return fmt.Errorf("release netns dir %s: namespace %s is still mounted", dir, e.Name())
		}
	}
	for {
		mounted, err := mountinfo.Mounted(dir)
		if err != nil || !mounted {
			break
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("release netns dir: unmount %s: %w", dir, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("release netns dir: %w", err)
	}
	return nil
}

// InNetns runs fn on an OS thread that has joined the network namespace
// at path; the calling goroutine's thread is not affected. Sockets fn opens
// stay in that namespace after it returns (a listener opened there accepts
// from any goroutine).
func InNetns(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()
	return onNetnsThread(func() error {
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter netns %s: %w", path, err)
		}
		return nil
	}, fn)
}

// onNetnsThread runs enter and then (if enter succeeded) fn on a locked OS
// thread of a new goroutine, then moves that thread back to the namespace
// it started in. A thread that cannot be moved back stays locked, and Go
// discards it when the goroutine ends.
func onNetnsThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			// enter may have moved the thread before failing.
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return to the original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// RemoveNetns unmounts and deletes a namespace file made by CreateNetns. A
// path that is already gone, or a file that is not mounted, is not an error.
//
// A namespace mounted before its directory was a mount point (by versions
// before CreateNetns made it one) may be hidden: `ip netns add` since bound
// the directory onto itself, which copied the mount. Unmounting the path
// then removes only the copy, and the file stays busy under the original.
// RemoveNetns finds the original in /proc/self/mountinfo, moves that bind
// of the directory aside for a moment (it is someone else's and holds their
// namespaces: it is moved back, never unmounted), unmounts and removes what
// it uncovered, and puts the bind back.
func RemoveNetns(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	unlock, err := lockNetnsDir(dir, unix.LOCK_SH)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no directory, so no namespace file either
	}
	if err != nil {
		return err
	}
	err = removeNetnsLocked(dir, path)
	unlock()
	if !errors.Is(err, unix.EBUSY) {
		return err
	}
	unlock, err = lockNetnsDir(dir, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	return removeHiddenNetns(dir, path)
}

// removeNetnsLocked unmounts path (every mount stacked there) and removes
// the file; the caller holds the directory's lock.
func removeNetnsLocked(dir, path string) error {
	for range 16 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("unmount netns %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns file %s: %w", path, err)
	}
	return nil
}

// removeHiddenNetns removes path's mount hidden under a bind of dir onto
// itself (see RemoveNetns). The caller holds the directory's lock
// exclusively, so no agent creates a namespace while the bind is aside.
func removeHiddenNetns(dir, path string) error {
	if err := removeNetnsLocked(dir, path); !errors.Is(err, unix.EBUSY) {
		return err // someone else's removal raced ours, or another error
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return fmt.Errorf("remove netns file %s: read mount table: %w", path, err)
	}
	var hidden, cover *mountinfo.Info
	for _, mi := range mounts {
		if mi.Mountpoint == path {
			hidden = mi
		}
	}
	if hidden == nil {
		return fmt.Errorf("remove netns file %s: busy, and no mount of it found in /proc/self/mountinfo", path)
	}
	// The bind that hides it sits on the same parent mount, at dir, and is
	// of the same filesystem: dir bound onto itself, as `ip netns add`
	// does. Anything else is not ours to move.
	for _, mi := range mounts {
		if mi.Mountpoint == dir && mi.Parent == hidden.Parent && sameFS(mounts, mi, hidden.Parent) {
			cover = mi
		}
	}
	if cover == nil {
		return fmt.Errorf("remove netns file %s: its mount (%d) is hidden by a mount that is not a bind of %s onto itself; unmount that by hand", path, hidden.ID, dir)
	}
	aside, err := os.MkdirTemp(filepath.Dir(dir), ".berth-netns-aside-")
	if err != nil {
		return fmt.Errorf("remove hidden netns %s: %w", path, err)
	}
	if err := unix.Mount(dir, aside, "", unix.MS_MOVE, ""); err != nil {
		_ = os.Remove(aside)
		return fmt.Errorf("remove hidden netns %s: move mount %d of %s aside: %w", path, cover.ID, dir, err)
	}
	// With the bind aside, path reaches the hidden mount.
	rmErr := removeNetnsLocked(dir, path)
	if err := unix.Mount(aside, dir, "", unix.MS_MOVE, ""); err != nil {
		// Leave the directory: it holds the mount and its namespaces.
		return errors.Join(rmErr, fmt.Errorf("remove hidden netns %s: move mount of %s back from %s: %w", path, dir, aside, err))
	}
	_ = os.Remove(aside)
	if rmErr != nil {
		return fmt.Errorf("remove hidden netns: %w", rmErr)
	}
	return nil
}

// sameFS reports whether mi is on the same filesystem as the mount with ID
// parent.
func sameFS(mounts []*mountinfo.Info, mi *mountinfo.Info, parent int) bool {
	for _, p := range mounts {
		if p.ID == parent {
			return p.Major == mi.Major && p.Minor == mi.Minor
		}
	}
	return false
}

// isNetns reports whether path is a mounted network namespace (and not the
// empty file CreateNetns mounts over).
func isNetns(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}
