package testenv

import (
	"context"
	"errors"
	"os"
	"time"
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
