package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/logs"
)

func numberedLines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

// TestLogDaemonKilledWhileAContainerEnds stops the log daemon (SIGSTOP)
// while a container writes its last lines and exits, then kills it
// (SIGKILL). The Runtime starts a new daemon, the exit waits for it, and
// the log holds every line: the output waited in the FIFOs, which the
// Runtime's Captures kept open after the shim closed them.
func TestLogDaemonKilledWhileAContainerEnds(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/logd-kill", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 1000 ]; do echo "first $i"; i=$((i+1)); done; sleep 2; i=0; while [ $i -lt 1000 ]; do echo "second $i"; echo "err $i" >&2; i=$((i+1)); done`},
	})
	tr.pull(t, img.Ref)
	spec := container.Spec{Image: img.Ref}
	id := tr.create(t, &spec)
	defer tr.Remove(t.Context(), id)
	ch, _, err := tr.startWatch(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	logPath := LogPath(tr.logDir, id)
	for i := 0; countLines(t, logPath) < 1000; i++ {
		if i > 3000 {
			t.Fatal("the first 1000 lines never reached the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid, err := tr.captures.DaemonPID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	task, err := tr.client.LoadContainer(tr.withNS(t.Context()), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		tk, err := task.Task(tr.withNS(t.Context()), nil)
		if err != nil {
			break // deleted: the exit went through already (it must not have: the daemon is stopped)
		}
		st, err := tk.Status(tr.withNS(t.Context()))
		if err == nil && st.Status == containerd.Stopped {
			break
		}
		if i > 3000 {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("container did not end while the log daemon was stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitExit(t, ch, time.Minute)
	if st.ExitCode != 0 {
		t.Errorf("exit %+v", st)
	}
	out := tr.logsOf(t, id)
	if want := numberedLines("first", 0, 1000) + numberedLines("second", 0, 1000); out.stdout != want {
		t.Errorf("stdout: %d bytes, want %d (first difference at %d)", len(out.stdout), len(want), firstDiff(out.stdout, want))
	}
	if want := numberedLines("err", 0, 1000); out.stderr != want {
		t.Errorf("stderr: %d bytes, want %d", len(out.stderr), len(want))
	}
	if newPID, err := tr.captures.DaemonPID(t.Context()); err != nil || newPID == pid {
		t.Errorf("daemon after the kill: pid %d, %v (killed %d)", newPID, err, pid)
	}
}

// TestContainerFromBeforeTheLogDaemon runs a container as agents before
// the log daemon created them (labels io.berth.log-config and
// io.berth.log-binary, the task's output going to a logger process that the
// shim started) and hands it to this Runtime as after an agent upgrade:
// Attach reports its exit once its own logger wrote everything, and a
// restart of the container is captured by the daemon into the same log.
func TestContainerFromBeforeTheLogDaemon(t *testing.T) {
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/legacy-log", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `sleep 1; i=0; while [ $i -lt 3000 ]; do echo "run $i"; echo "err $i" >&2; i=$((i+1)); done`},
	})
	tr.pull(t, img.Ref)
	spec := container.Spec{Image: img.Ref}
	id := tr.create(t, &spec)
	defer tr.Remove(t.Context(), id)

	// What the old agent's Start did.
	ctx := tr.withNS(t.Context())
	c, err := tr.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	if _, err := c.SetLabels(ctx, map[string]string{"io.berth.log-binary": self}); err != nil {
		t.Fatal(err)
	}
	cfg, err := logs.DecodeConfig(labels[labelLogConfig])
	if err != nil {
		t.Fatal(err)
	}
	args, err := logs.ShimArgs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.NewTask(ctx, cio.BinaryIO(self, args))
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}

	upgraded := newTestRuntime(t, func(o *Options) { *o = tr.opts })
	ch, err := upgraded.Attach(t.Context(), id)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if st := waitExit(t, ch, 2*time.Minute); st.ExitCode != 0 {
		t.Errorf("exit %+v", st)
	}
	out := tr.logsOf(t, id)
	if want := numberedLines("run", 0, 3000); out.stdout != want {
		t.Errorf("stdout of the old logger: %d bytes, want %d", len(out.stdout), len(want))
	}
	if want := numberedLines("err", 0, 3000); out.stderr != want {
		t.Errorf("stderr of the old logger: %d bytes, want %d", len(out.stderr), len(want))
	}
	if entries, _ := os.ReadDir(filepath.Join(tr.opts.StateDir, ".logd", "captures")); len(entries) != 0 {
		t.Errorf("the daemon has captures of a container from before it: %v", entries)
	}

	// Started again by the new agent: the daemon appends to the same log.
	ch, _, err = upgraded.startWatch(t.Context(), id)
	if err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if st := waitExit(t, ch, 2*time.Minute); st.ExitCode != 0 {
		t.Errorf("second exit %+v", st)
	}
	out = tr.logsOf(t, id)
	if want := numberedLines("run", 0, 3000) + numberedLines("run", 0, 3000); out.stdout != want {
		t.Errorf("stdout after the restart: %d bytes, want %d", len(out.stdout), len(want))
	}
}
