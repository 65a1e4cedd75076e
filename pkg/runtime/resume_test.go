package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/snapshots"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
)

// TestCreateStartResumeAfterKill9 kills (SIGKILL) the process that creates
// and starts a container at each point of Create and Start where a crash
// leaves something behind, and checks that a new Runtime, doing what the
// restarted agent's engine does (Create again when the container does not
// exist, then Start), brings the container up exactly once from what was
// left (issue 23, item 2). Before, a kill after the snapshot was made
// failed the next Create with "container already exists: snapshot ...
// already exists", and one after the task was made failed the next Start
// with "task already exists (created)" (or "(running)").
func TestCreateStartResumeAfterKill9(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/resume", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `echo started; trap "exit 0" TERM; while true; do sleep 0.1; done`},
	})
	tr.pull(t, img.Ref)
	cli := tr.Client()
	ctx := tr.withNS(t.Context())

	for _, point := range []string{"create:files", "create:snapshot", "start:created", "start:started"} {
		t.Run(point, func(t *testing.T) {
			id := "resume-" + strings.ReplaceAll(point, ":", "-")
			spec := container.Spec{ID: id, Image: img.Ref, LogPath: LogPath(tr.logDir, id)}
			t.Cleanup(func() { tr.Remove(context.Background(), id) })
			cmd := startHelper(t, helperJob{Options: tr.opts, Spec: spec, CrashAt: point}, "CRASHPOINT")
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			// What the restarted agent's engine does: a container that does
			// not exist is created again; then it is started.
			if _, err := cli.LoadContainer(ctx, id); err != nil {
				if !strings.HasPrefix(point, "create:") {
					t.Fatalf("container gone after a kill at %s: %v", point, err)
				}
				if err := tr.Create(t.Context(), spec); err != nil {
					t.Fatalf("Create after a kill -9 at %s: %v", point, err)
				}
			}
			ch, _, err := tr.startWatch(t.Context(), id)
			if err != nil {
				t.Fatalf("Start after a kill -9 at %s: %v", point, err)
			}
			// The container's command ran exactly once.
			waitLog(t, LogPath(tr.logDir, id), "started\n")
			if err := tr.Stop(t.Context(), id, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			st := waitExit(t, ch, time.Minute)
			if st.ExitCode != 0 {
				t.Errorf("exit %+v, want 0 (the trap of the one process that ran)", st)
			}
			if got := tr.logsOf(t, id).stdout; got != "started\n" {
				t.Errorf("container output %q, want one \"started\" line: the command ran once", got)
			}
			if err := tr.Remove(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			_ = cli.SnapshotService(tr.opts.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
				if info.Name == id {
					t.Errorf("snapshot %s left after Remove", id)
				}
				return nil
			})
		})
	}
}

// waitLog waits until the container's json-file log holds want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var got strings.Builder
		err := logs.Read(t.Context(), path, logs.ReadOptions{}, func(e logs.Entry) error {
			got.WriteString(e.Log)
			return nil
		})
		if strings.Contains(got.String(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s lacks %q after a minute (has %q, %v)", path, want, got.String(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartWaitsForAnEarlierStartUnderWay is a restarted agent's Start
// meeting the NewTask of the agent it replaces, which containerd is still
// serving (issue 23, item 2: "failed to start shim: mkdir … file exists"
// failed the task). The earlier call is stood in for by the bundle
// directory containerd makes first, and, a second later, the task that
// call makes. Start waits for it, takes it up, and the command runs once.
func TestStartWaitsForAnEarlierStartUnderWay(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/underway", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `echo started; trap "exit 0" TERM; while true; do sleep 0.1; done`},
	})
	tr.pull(t, img.Ref)
	ctx := tr.withNS(t.Context())
	const id = "start-under-way"
	spec := container.Spec{ID: id, Image: img.Ref, LogPath: LogPath(tr.logDir, id)}
	if err := tr.Create(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Remove(context.Background(), id) })

	// The test's containerd keeps its state next to its socket
	// (internal/testenv); the runtime v2 plugin makes a task's bundle in
	// io.containerd.runtime.v2.task/NAMESPACE/ID there.
	state := filepath.Join(filepath.Dir(tr.cd.Address), "state")
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("the test containerd's state directory: %v", err)
	}
	bundle := filepath.Join(state, "io.containerd.runtime.v2.task", tr.ns, id)
	if err := os.MkdirAll(filepath.Dir(bundle), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	earlier := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		if err := os.Remove(bundle); err != nil {
			earlier <- err
			return
		}
		c, err := tr.Client().LoadContainer(ctx, id)
		if err == nil {
			_, err = c.NewTask(ctx, cio.NullIO)
		}
		earlier <- err
	}()

	ch, _, err := tr.startWatch(t.Context(), id)
	if err != nil {
		t.Fatalf("Start while an earlier start is under way: %v", err)
	}
	// The stand-in's NewTask made the task first (Start took it up) or
	// found Start's task: either way one task ran.
	t.Logf("the earlier start's NewTask: %v", <-earlier)
	waitLog(t, LogPath(tr.logDir, id), "started\n")
	if err := tr.Stop(t.Context(), id, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := waitExit(t, ch, time.Minute); st.ExitCode != 0 {
		t.Errorf("exit %+v, want 0 (the trap of the one process that ran)", st)
	}
	if got := tr.logsOf(t, id).stdout; got != "started\n" {
		t.Errorf("container output %q, want one \"started\" line: the command ran once", got)
	}
}
