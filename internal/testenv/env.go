package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Environment variables through which cmd/berth-testenv hands running
// instances to the test processes it starts. The prefix is BERTHTEST_, not
// BERTH_, because pkg/config warns about every unknown BERTH_* variable and
// agents started by tests inherit these.
const (
	// EnvContainerdAddress is the unix socket path of the shared containerd.
	EnvContainerdAddress = "BERTHTEST_CONTAINERD_ADDRESS"
	// EnvSnapshotter is the snapshotter that works with that containerd
	// ("overlayfs" or "native"); when set before start it forces the choice.
	EnvSnapshotter = "BERTHTEST_CONTAINERD_SNAPSHOTTER"
	// EnvRegistry is the host:port of the plain registry.
	EnvRegistry = "BERTHTEST_REGISTRY"
	// EnvAuthRegistry is the host:port of the htpasswd registry.
	EnvAuthRegistry = "BERTHTEST_AUTH_REGISTRY"
	// EnvAuthUser and EnvAuthPassword are its credentials.
	EnvAuthUser     = "BERTHTEST_AUTH_USER"
	EnvAuthPassword = "BERTHTEST_AUTH_PASSWORD"
)

// Options configures Start.
type Options struct {
	// Dir is where the temporary directory is created; "" means os.TempDir().
	Dir string
	// Snapshotter forces containerd's default snapshotter ("overlayfs" or
	// "native"); "" means BERTHTEST_CONTAINERD_SNAPSHOTTER if set, else
	// overlayfs when an overlay mount works here, else native.
	Snapshotter string
	// NoContainerd, NoRegistry and NoAuthRegistry leave that part out.
	NoContainerd   bool
	NoRegistry     bool
	NoAuthRegistry bool
}

// Env is a set of private daemons under one temporary directory. Parts are
// started on first use and all stopped by Close.
type Env struct {
	dir         string
	snapshotter string // forced snapshotter, "" to detect

	// mu guards the fields below; it is held while a part starts so that
	// concurrent tests wait for one start instead of racing two.
	mu        sync.Mutex
	ctrd      *containerdServer
	ctrdErr   error
	reg       *registryServer
	regErr    error
	authReg   *registryServer
	authErr   error
	closed    bool
	leftovers []string
}

// newEnv creates the temporary directory of an Env.
func newEnv(parent, snapshotter string) (*Env, error) {
	if snapshotter == "" {
		snapshotter = os.Getenv(EnvSnapshotter)
	}
	dir, err := os.MkdirTemp(parent, "berth-testenv-")
	if err != nil {
		return nil, fmt.Errorf("create test environment dir: %w", err)
	}
	// Resolve symlinks so paths match what /proc/self/mountinfo shows.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return &Env{dir: dir, snapshotter: snapshotter}, nil
}

// Start creates an Env and starts the parts opts asks for. On error
// everything already started is stopped again.
func Start(ctx context.Context, opts Options) (*Env, error) {
	e, err := newEnv(opts.Dir, opts.Snapshotter)
	if err != nil {
		return nil, err
	}
	var errs []error
	if !opts.NoContainerd {
		if _, err := e.containerd(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if !opts.NoRegistry {
		if _, err := e.registry(ctx, false); err != nil {
			errs = append(errs, err)
		}
	}
	if !opts.NoAuthRegistry {
		if _, err := e.registry(ctx, true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, e.Close(ctx))
	}
	return e, nil
}

// Dir is the temporary directory holding every part's files.
func (e *Env) Dir() string { return e.dir }

// containerd starts containerd on first use.
func (e *Env) containerd(ctx context.Context) (*containerdServer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("test environment already closed")
	}
	if e.ctrd == nil && e.ctrdErr == nil {
		e.ctrd, e.ctrdErr = startContainerd(ctx, filepath.Join(e.dir, "containerd"), e.snapshotter)
	}
	return e.ctrd, e.ctrdErr
}

// registry starts the plain or the auth registry on first use.
func (e *Env) registry(ctx context.Context, auth bool) (*registryServer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("test environment already closed")
	}
	srv, errp, name := &e.reg, &e.regErr, "registry"
	if auth {
		srv, errp, name = &e.authReg, &e.authErr, "auth-registry"
	}
	if *srv == nil && *errp == nil {
		*srv, *errp = startRegistry(ctx, filepath.Join(e.dir, name), auth)
	}
	return *srv, *errp
}

// Containerd describes the running private containerd, or nil if it was not
// started.
func (e *Env) Containerd() *ContainerdInstance {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctrd == nil {
		return nil
	}
	return &ContainerdInstance{Address: e.ctrd.address, Snapshotter: e.ctrd.snapshotter}
}

// Registry describes the plain registry, or nil if it was not started.
func (e *Env) Registry() *RegistryInstance {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reg == nil {
		return nil
	}
	r := e.reg.reg
	return &r
}

// AuthRegistry describes the htpasswd registry, or nil if it was not started.
func (e *Env) AuthRegistry() *RegistryInstance {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.authReg == nil {
		return nil
	}
	r := e.authReg.reg
	return &r
}

// Vars returns the KEY=VALUE environment entries that hand the running parts
// to test processes.
func (e *Env) Vars() []string {
	var vars []string
	if c := e.Containerd(); c != nil {
		vars = append(vars, EnvContainerdAddress+"="+c.Address, EnvSnapshotter+"="+c.Snapshotter)
	}
	if r := e.Registry(); r != nil {
		vars = append(vars, EnvRegistry+"="+r.Host)
	}
	if r := e.AuthRegistry(); r != nil {
		vars = append(vars, EnvAuthRegistry+"="+r.Host, EnvAuthUser+"="+r.Username, EnvAuthPassword+"="+r.Password)
	}
	return vars
}

// Close tears everything down: every task and container in every namespace
// of the containerd, containerd itself, leftover shims and their containers,
// the registries, mounts under the directory, and the directory. It then
// records what is still left (see Leftovers). Close may be called again.
func (e *Env) Close(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	if e.ctrd != nil {
		if err := e.ctrd.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop containerd: %w", err))
		}
	}
	for _, r := range []*registryServer{e.reg, e.authReg} {
		if r != nil {
			if err := r.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop registry %s: %w", r.reg.Host, err))
			}
		}
	}
	// Anything else still referring to the directory (a shim started while
	// containerd was stopping) is killed before the directory goes.
	if killed, err := killProcsReferencing(e.dir); err != nil {
		errs = append(errs, err)
	} else if len(killed) > 0 {
		time.Sleep(100 * time.Millisecond) // let the kernel release their mounts
	}
	if err := unmountUnder(e.dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", e.dir, err))
	}
	e.leftovers = leftoversUnder(e.dir)
	if e.ctrd != nil {
		e.leftovers = append(e.leftovers, hostLeftovers(e.ctrd.address, e.ctrd.refs)...)
	}
	if len(e.leftovers) > 0 {
		errs = append(errs, fmt.Errorf("left behind after teardown:\n  %s", strings.Join(e.leftovers, "\n  ")))
	}
	return errors.Join(errs...)
}

// Swept lists, after Close, the containers ("namespace/id") that were still
// there when teardown began: tests that did not clean up after themselves.
// Teardown removed them; the runner prints them so the leak can be found.
func (e *Env) Swept() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctrd == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range e.ctrd.refs {
		if !seen[r.String()] {
			seen[r.String()] = true
			out = append(out, r.String())
		}
	}
	return out
}

// Leftovers lists, after Close, the processes, mounts and files of this Env
// that teardown failed to remove. It is empty when teardown was clean.
func (e *Env) Leftovers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.leftovers...)
}

// leftoversUnder describes processes referencing dir, mounts below it and
// the directory itself if it still exists.
func leftoversUnder(dir string) []string {
	var out []string
	procs, err := procsReferencing(dir)
	if err != nil {
		out = append(out, "cannot check processes: "+err.Error())
	}
	for _, p := range procs {
		out = append(out, "process "+p.String())
	}
	mps, err := mountsUnder(dir)
	if err != nil {
		out = append(out, "cannot check mounts: "+err.Error())
	}
	for _, mp := range mps {
		out = append(out, "mount "+mp)
	}
	if _, err := os.Lstat(dir); err == nil {
		out = append(out, "directory "+dir)
	}
	return out
}
