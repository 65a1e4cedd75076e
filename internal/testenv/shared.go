package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
)

// Shared is a containerd and a plain registry for a program that runs
// outside `go test` (the benchmark programs under bench/cmd): the ones the
// berth-testenv runner exported, or private ones started for the program.
type Shared struct {
	// Address is containerd's socket; Snapshotter the one to use with it.
	Address, Snapshotter string
	Registry             *RegistryInstance

	env *Env // nil when the runner's instances are used
}

// AcquireShared returns the runner's containerd and registry when the
// environment names them, and otherwise starts private ones; Close stops
// what it started.
func AcquireShared(ctx context.Context) (*Shared, error) {
	s := &Shared{Address: os.Getenv(EnvContainerdAddress), Snapshotter: os.Getenv(EnvSnapshotter)}
	if host := os.Getenv(EnvRegistry); host != "" {
		s.Registry = &RegistryInstance{Host: host}
	}
	if s.Address == "" || s.Registry == nil {
		env, err := Start(ctx, Options{NoAuthRegistry: true})
		if err != nil {
			return nil, err
		}
		s.env = env
		s.Address, s.Snapshotter, s.Registry = env.Containerd().Address, env.Containerd().Snapshotter, env.Registry()
	}
	if s.Snapshotter == "" {
		s.Snapshotter = SnapshotterNative
	}
	return s, nil
}

// Close tears down what AcquireShared started (within two minutes, even
// when ctx has ended); the runner's instances are left to the runner.
func (s *Shared) Close(ctx context.Context) error {
	if s.env == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := s.env.Close(cctx); err != nil {
		return errors.Join(errors.New("tear down the benchmark's containerd and registry"), err)
	}
	return nil
}

// Bench is what a benchmark program on pkg/runtime starts from
// (bench/cmd/stats, bench/cmd/runtime): the shared containerd and
// registry, its image pushed there, a scratch directory, its own path (the
// runtime's LoggerBinary) and a containerd namespace of its own.
type Bench struct {
	*Shared
	Image Image
	// Dir is the scratch directory; Close removes it.
	Dir string
	// Self is the running program's path.
	Self string
	// Namespace is bench-<name>-<pid>; Close empties and deletes it.
	Namespace string
}

// StartBench checks that the program runs as root, acquires the shared
// containerd and registry, builds spec and pushes it as bench/<name>, and
// makes the scratch directory. Close undoes all of it.
func StartBench(ctx context.Context, name string, spec ImageSpec) (_ *Bench, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (containerd, runc); see scripts/test-deps.sh")
	}
	shared, err := AcquireShared(ctx)
	if err != nil {
		return nil, err
	}
	b := &Bench{Shared: shared, Namespace: fmt.Sprintf("bench-%s-%d", name, os.Getpid())}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close(ctx))
		}
	}()
	if b.Image, err = BuildAndPush(ctx, shared.Registry, "bench/"+name, spec); err != nil {
		return nil, err
	}
	if b.Dir, err = os.MkdirTemp("", "berth-bench-"+name+"-"); err != nil {
		return nil, err
	}
	if b.Self, err = os.Executable(); err != nil {
		return nil, err
	}
	return b, nil
}

// Close empties and deletes the namespace, removes the scratch directory
// and releases the shared containerd and registry, even when ctx has
// ended. Close the program's own containerd clients first.
func (b *Bench) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	err := b.emptyNamespace(ctx)
	if err != nil {
		// A shim that is exiting may drop the delete (ttrpc: closed, seen
		// once): once more after a moment.
		time.Sleep(time.Second)
		err = b.emptyNamespace(ctx)
	}
	if b.Dir != "" {
		err = errors.Join(err, os.RemoveAll(b.Dir))
	}
	return errors.Join(err, b.Shared.Close(ctx))
}

func (b *Bench) emptyNamespace(ctx context.Context) error {
	c, err := containerd.New(b.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("empty namespace %s: connect to containerd %s: %w", b.Namespace, b.Address, err)
	}
	defer c.Close()
	if err := EmptyNamespace(ctx, c, b.Namespace); err != nil {
		return fmt.Errorf("empty namespace %s: %w", b.Namespace, err)
	}
	return nil
}
