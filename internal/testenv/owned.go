package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// OwnedContainerd is a containerd that one test has to itself, so that the
// test can kill it and start it again (fault injection) without disturbing
// the shared one other tests and packages use.
type OwnedContainerd struct {
	ContainerdInstance
	srv *containerdServer
}

// OwnContainerd starts a private containerd for this test. At the end of
// the test it is torn down like the shared one (every task and container
// deleted, shims killed, mounts and files removed); a leftover fails the
// test.
func OwnContainerd(t testing.TB) *OwnedContainerd {
	t.Helper()
	skipShort(t)
	RequireRoot(t)
	RequireBinaries(t, "containerd", "runc", "containerd-shim-runc-v2")
	requireMain(t)
	env, err := newEnv("", "")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	srv, err := env.containerd(t.Context())
	if err != nil {
		t.Fatalf("testenv: start containerd: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.Close(ctx); err != nil {
			t.Errorf("testenv: tear down the test's own containerd: %v", err)
		}
	})
	return &OwnedContainerd{
		ContainerdInstance: ContainerdInstance{Address: srv.address, Snapshotter: srv.snapshotter},
		srv:                srv,
	}
}

// Kill ends containerd with SIGKILL, as a crash or an OOM kill does, and
// waits until it is gone. Shims and containers keep running.
func (c *OwnedContainerd) Kill(t testing.TB) {
	t.Helper()
	p := c.srv.proc
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		t.Fatalf("testenv: kill containerd: %v", err)
	}
	<-p.done
}

// Running reports whether containerd runs (it was not killed, or was
// restarted since).
func (c *OwnedContainerd) Running() bool { return !c.srv.proc.exited() }

// Restart starts containerd again on the same socket, root and state (after
// Kill) and waits until it serves.
func (c *OwnedContainerd) Restart(t testing.TB) {
	t.Helper()
	if !c.srv.proc.exited() {
		t.Fatal("testenv: containerd is still running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.srv.run(ctx); err != nil {
		t.Fatalf("testenv: %v", fmt.Errorf("restart containerd: %w", err))
	}
}
