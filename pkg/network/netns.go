package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

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
// process. It returns the path. Setup uses it; it is exported for tests and
// benchmarks that need a namespace of their own.
func CreateNetns(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create netns dir %s: %w", dir, err)
	}
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
		_ = RemoveNetns(path)
		return "", err
	}
	return path, nil
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
func RemoveNetns(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns file %s: %w", path, err)
	}
	return nil
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
