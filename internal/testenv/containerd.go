package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/containerd/namespaces"
	"golang.org/x/sys/unix"
)

// Snapshotter names this package chooses between.
const (
	SnapshotterOverlay = "overlayfs"
	SnapshotterNative  = "native"
)

// snapshotterLabel is the namespace label containerd's client reads to pick a
// snapshotter when none is given (defaults.DefaultSnapshotterNSLabel).
const snapshotterLabel = "containerd.io/defaults/snapshotter"

// disabledPlugins keeps the private containerd small and quick to start: no
// CRI, and no snapshotters that cannot work here. The v1 linux runtime stays:
// containerd 1.6's tasks service does not load without it.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
}

// containerdServer is a private containerd started by this package.
type containerdServer struct {
	dir         string
	address     string
	snapshotter string
	config      string // its config.toml, for a restart
	proc        *daemon
	refs        []containerRef // containers seen during stop, for the leftover check
}

// detectSnapshotter tries an overlay mount inside dir; nested environments
// often refuse it, and then the slower but always working native snapshotter
// is used.
func detectSnapshotter(dir string) string {
	probe := filepath.Join(dir, "overlay-probe")
	defer os.RemoveAll(probe)
	var paths [4]string
	for i, n := range []string{"lower", "upper", "work", "merged"} {
		paths[i] = filepath.Join(probe, n)
		if err := os.MkdirAll(paths[i], 0o755); err != nil {
			return SnapshotterNative
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", paths[0], paths[1], paths[2])
	if err := unix.Mount("overlay", paths[3], "overlay", 0, opts); err != nil {
		return SnapshotterNative
	}
	if err := unix.Unmount(paths[3], unix.MNT_DETACH); err != nil {
		return SnapshotterNative
	}
	return SnapshotterOverlay
}

// startContainerd starts containerd with root, state, socket and config in
// dir and waits until it serves. An empty snapshotter is detected.
func startContainerd(ctx context.Context, dir, snapshotter string) (*containerdServer, error) {
	for _, d := range []string{"root", "state", "opt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o711); err != nil {
			return nil, fmt.Errorf("start containerd: %w", err)
		}
	}
	if snapshotter == "" {
		snapshotter = detectSnapshotter(dir)
	}
	s := &containerdServer{
		dir:         dir,
		address:     filepath.Join(dir, "containerd.sock"),
		snapshotter: snapshotter,
	}
	cfg := filepath.Join(dir, "config.toml")
	quoted := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), strings.Join(quoted, ", "),
		s.address, s.address+".ttrpc", filepath.Join(dir, "opt"))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("start containerd: write config: %w", err)
	}
	s.config = cfg
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the containerd process (again, after a kill: shims and their
// containers kept running and are found again) and waits until it serves.
func (s *containerdServer) run(ctx context.Context) error {
	proc, err := startDaemon("containerd", filepath.Join(s.dir, "containerd.log"), "containerd", "--config", s.config)
	if err != nil {
		return err
	}
	s.proc = proc
	if err := s.waitServing(ctx, 30*time.Second); err != nil {
		_ = proc.stop(5 * time.Second)
		return err
	}
	return nil
}

// waitServing polls the socket until containerd answers a version request.
func (s *containerdServer) waitServing(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if s.proc.exited() {
			return fmt.Errorf("containerd exited during start (%v); log:\n%s", s.proc.waitErr, s.proc.logTail())
		}
		if _, err := os.Stat(s.address); err == nil {
			c, err := containerd.New(s.address, containerd.WithTimeout(2*time.Second))
			if err == nil {
				_, err = c.Version(ctx)
				c.Close()
				if err == nil {
					return nil
				}
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd at %s not serving (last error %v); log:\n%s", s.address, last, s.proc.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop deletes every task and container in every namespace, stops
// containerd, force-deletes and kills shims and their containers that still
// reference the socket, removes the per-namespace directories runc leaves on
// the host, and unmounts what is left under dir.
func (s *containerdServer) stop(ctx context.Context) error {
	var errs []error
	var nss []string
	if !s.proc.exited() {
		var refs []containerRef
		var err error
		nss, refs, err = cleanupAllNamespaces(ctx, s.address)
		// A containerd that died meanwhile is not a teardown failure: its
		// shims are found and killed below.
		if err != nil && !s.proc.exited() {
			errs = append(errs, err)
		}
		s.refs = append(s.refs, refs...)
	}
	if err := s.proc.stop(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	refs, err := killShims(s.dir, s.address)
	if err != nil {
		errs = append(errs, err)
	}
	s.refs = append(s.refs, refs...)
	for _, r := range refs {
		nss = append(nss, r.ns)
	}
	for _, ns := range nss {
		// A namespace directory still in use belongs to another containerd
		// that uses the same name (the system's "default"); our own
		// containers are checked one by one by hostLeftovers.
		if err := removeNamespaceDirs(ns); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EBUSY) {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanupAllNamespaces kills and deletes every task and container that
// containerd at address knows, and returns the namespaces and containers it
// saw.
func cleanupAllNamespaces(ctx context.Context, address string) ([]string, []containerRef, error) {
	// The gRPC client retries a refused socket until its timeout; a plain
	// dial tells at once that containerd is gone.
	conn, err := net.DialTimeout("unix", address, 2*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to containerd %s for cleanup: %w", address, err)
	}
	conn.Close()
	c, err := containerd.New(address, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to containerd %s for cleanup: %w", address, err)
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	var refs []containerRef
	var errs []error
	for _, ns := range nss {
		nsCtx := namespaces.WithNamespace(ctx, ns)
		if ctrs, err := c.Containers(nsCtx); err == nil {
			for _, ctr := range ctrs {
				refs = append(refs, containerRef{ns: ns, id: ctr.ID()})
			}
		}
		if err := deleteContainers(nsCtx, c); err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: %w", ns, err))
		}
	}
	return nss, refs, errors.Join(errs...)
}

// deleteContainers kills and deletes every task, then deletes every
// container with its snapshot, in the namespace of ctx. NotFound counts as
// done: another cleanup may have raced us.
func deleteContainers(ctx context.Context, c *containerd.Client) error {
	ctrs, err := c.Containers(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, ctr := range ctrs {
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task %s: %w", ctr.ID(), err))
			}
		} else if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("load task %s: %w", ctr.ID(), err))
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// EmptyNamespace is emptyNamespace for programs that create their own
// namespace on a shared containerd (the bench/cmd benchmarks).
func EmptyNamespace(ctx context.Context, c *containerd.Client, ns string) error {
	return emptyNamespace(ctx, c, ns)
}

// emptyNamespace deletes everything in the namespace of ctx: tasks,
// containers with snapshots, leases, images (content and unpacked snapshots
// go with the synchronous garbage collection), then the namespace itself.
func emptyNamespace(ctx context.Context, c *containerd.Client, ns string) error {
	ctx = namespaces.WithNamespace(ctx, ns)
	if err := deleteContainers(ctx, c); err != nil {
		return err
	}
	ls, err := c.LeasesService().List(ctx)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	for _, l := range ls {
		if err := c.LeasesService().Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete lease %s: %w", l.ID, err)
		}
	}
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := c.ImageService().Delete(ctx, img.Name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete image %s: %w", img.Name, err)
		}
	}
	if err := c.NamespaceService().Delete(ctx, ns); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete namespace: %w", err)
	}
	return nil
}
