package runtime

import (
	"context"
	"slices"
	"syscall"
	"testing"

	"github.com/containerd/containerd/leases"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
)

// TestLeaseOfAKilledCreateIsRemovedAtRestart kills (SIGKILL) an agent inside
// NewContainer, while the lease of the create is held, and starts the
// Runtime again on the same state directory: the killed create's lease must
// be gone, and the leases of others (another agent's, unlabelled ones, and
// one of a live Runtime of this directory) left alone. Before, the
// containerd client's own lease of NewContainer (24 h, no labels) stayed
// behind, as the chaos run found ("left behind: lease 405280446-b-XA").
func TestLeaseOfAKilledCreateIsRemovedAtRestart(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/lease", testenv.ImageSpec{Cmd: []string{"/bin/true"}})
	tr.pull(t, img.Ref)
	ctx := tr.withNS(t.Context())
	ls := tr.Client().LeasesService()

	// Leases the restart must not touch.
	var keep []string
	for _, labels := range []map[string]string{
		nil, // someone else's, e.g. a client's own
		{leaseOwnerLabel: "/another/agent", leaseHolderLabel: "1:1:x"},
		{leaseOwnerLabel: tr.opts.StateDir, leaseHolderLabel: tr.holder.String()}, // held by a live Runtime
	} {
		l, err := ls.Create(ctx, leases.WithRandomID(), leases.WithLabels(labels))
		if err != nil {
			t.Fatal(err)
		}
		if labels != nil && labels[leaseHolderLabel] == tr.holder.String() {
			tr.mu.Lock()
			tr.held[l.ID] = true
			tr.mu.Unlock()
		}
		keep = append(keep, l.ID)
		t.Cleanup(func() { ls.Delete(context.WithoutCancel(ctx), l) })
	}

	spec := container.Spec{ID: "lease-kill", Image: img.Ref, LogPath: LogPath(tr.logDir, "lease-kill")}
	t.Cleanup(func() { tr.Remove(context.Background(), spec.ID) })
	cmd := startHelper(t, helperJob{Options: tr.opts, Spec: spec, CrashAt: "create:snapshot"}, "CRASHPOINT")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if ids := leaseIDs(t, ls, ctx); len(ids) <= len(keep) {
		t.Fatalf("leases after the kill %v: the killed create held none, the test proves nothing", ids)
	}

	// The agent starts again with the same state directory.
	rt, err := New(t.Context(), tr.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	got := leaseIDs(t, ls, ctx)
	slices.Sort(keep)
	if !slices.Equal(got, keep) {
		t.Errorf("leases after the restart %v, want only the others' %v", got, keep)
	}
	// The restarted agent creates the container, and leaves no lease of its own.
	if err := rt.Create(t.Context(), spec); err != nil {
		t.Fatalf("Create after the restart: %v", err)
	}
	if got := leaseIDs(t, ls, ctx); !slices.Equal(got, keep) {
		t.Errorf("leases after a Create %v, want only the others' %v", got, keep)
	}
}

func leaseIDs(t *testing.T, ls leases.Manager, ctx context.Context) []string {
	t.Helper()
	all, err := ls.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range all {
		ids = append(ids, l.ID)
	}
	slices.Sort(ids)
	return ids
}
