package agent_test

import (
	"context"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/state"
)

// ownContainerdHost is a hostEnv whose agent uses a containerd of this
// test's own, which the test kills and starts again, and a busybox image.
func ownContainerdHost(t *testing.T) (*hostEnv, *testenv.OwnedContainerd, testenv.Image) {
	t.Helper()
	own := testenv.OwnContainerd(t)
	h := newHostEnv(t, func(h *hostEnv) {
		h.Containerd = own.Address
		h.Snapshotter = own.Snapshotter
	})
	img := testenv.BuildImage(t, testenv.Registry(t), "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	return h, own, img
}

// metricInt reads one integer sample ("name{labels}") from /metrics.
func metricInt(t *testing.T, a *agent.Agent, sample string) int {
	t.Helper()
	v := metricValue(t, a, sample)
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("/metrics sample %s = %q, want an integer", sample, v)
	}
	return n
}

// processAlive reports whether a process with pid exists.
func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// TestPlacedWhileContainerdDown proves that a task placed while containerd
// is down stays PENDING, its pull retried with backoff (visible in its
// state and /metrics), and is pulled and started once containerd is back
// (issue 23, item 8). Before, it failed at once with
// CannotPullContainerError.
func TestPlacedWhileContainerdDown(t *testing.T) {
	h, own, img := ownContainerdHost(t)
	a := h.runAgent(t, h.config(t))
	task := oneContainerTask("down-"+randomHex(3), img.Ref, []string{"/bin/sh", "-c", "sleep 3600"}, "{}")

	own.Kill(t)
	handle(t, a, payload(task))
	st := waitTask(t, a, task.Arn, "a pull waiting for containerd (or STOPPED)", 2*time.Minute, func(st engine.TaskState) bool {
		return container(st, "main").Retries >= 2 || st.KnownStatus == engine.TaskStopped
	})
	if st.KnownStatus != engine.TaskNone || st.DesiredStatus != engine.TaskRunning {
		t.Fatalf("task placed while containerd is down: %s; want it PENDING, waiting for containerd", describe(st))
	}
	t.Logf("waiting for containerd: retries=%d last error %q", container(st, "main").Retries, container(st, "main").RetryError)
	if n := metricInt(t, a, `berth_retries_pending{op="container"}`); n != 1 {
		t.Errorf(`berth_retries_pending{op="container"} = %d, want 1 (the pull waiting)`, n)
	}
	own.Restart(t)
	st = waitTask(t, a, task.Arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	if c := container(st, "main"); c.Retries != 0 || c.RetryError != "" {
		t.Errorf("running container still shows retries=%d error %q", c.Retries, c.RetryError)
	}
	handle(t, a, payload(stopped(task)))
	waitTask(t, a, task.Arn, "STOPPED", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
}

// TestStopWhileContainerdDown proves that a StopTask that arrives while
// containerd is down is retried with backoff until containerd answers
// (visible in the task's state and /metrics); meanwhile the task stays
// RUNNING, its container runs with the same PID and its network namespace
// stays, and it is reported STOPPED only once the container is gone, the
// network removed after it (issue 23, item 1). Before, three stop attempts
// one second apart ended in STOPPED with "CannotStopContainerError", the
// network was removed, and the container kept running.
func TestStopWhileContainerdDown(t *testing.T) {
	h, own, img := ownContainerdHost(t)
	a := h.runAgent(t, h.config(t))
	task := oneContainerTask("stopdown-"+randomHex(3), img.Ref, []string{"/bin/sh", "-c", "sleep 3600"}, "{}")
	handle(t, a, payload(task))
	st := waitTask(t, a, task.Arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	pid := container(st, "main").PID
	if !processAlive(pid) {
		t.Fatalf("container process %d of the running task does not exist", pid)
	}

	// Read as text: the metric's absence is reported after the statuses.
	stopsBefore := metricValue(t, a, `berth_retries_total{op="stop"}`)
	own.Kill(t)
	handle(t, a, payload(stopped(task)))
	// Three failed stops are where the agent used to give up.
	st = waitTask(t, a, task.Arn, "three failed stops (or STOPPED)", 2*time.Minute, func(st engine.TaskState) bool {
		return container(st, "main").Retries >= 3 || st.KnownStatus == engine.TaskStopped
	})
	c := container(st, "main")
	if st.KnownStatus != engine.TaskRunning || c.KnownStatus != engine.ContainerRunning {
		t.Fatalf("StopTask with containerd down: %s; want task and container RUNNING until the container is stopped", describe(st))
	}
	if !processAlive(pid) {
		t.Fatalf("container process %d is gone although containerd was down", pid)
	}
	if ns := netnsWithPrefix(h.Prefix); len(ns) != 1 {
		t.Fatalf("network namespaces %v while the container still runs; want the task's one kept", ns)
	}
	before, _ := strconv.Atoi(stopsBefore)
	if n := metricInt(t, a, `berth_retries_total{op="stop"}`) - before; n < 3 {
		t.Errorf(`berth_retries_total{op="stop"} grew by %d, want at least 3`, n)
	}
	if n := metricInt(t, a, `berth_retries_pending{op="container"}`); n != 1 {
		t.Errorf(`berth_retries_pending{op="container"} = %d, want 1 (the stop waiting)`, n)
	}
	t.Logf("stop waiting for containerd: retries=%d last error %q", c.Retries, c.RetryError)

	own.Restart(t)
	st = waitTask(t, a, task.Arn, "STOPPED", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	c = container(st, "main")
	if c.ExitCode == nil || (*c.ExitCode != 137 && *c.ExitCode != 143) || c.Reason != "" {
		t.Errorf("stopped container exit %v reason %q, want 143 or 137 and no failure reason", exitOf(c), c.Reason)
	}
	if st.StoppedReason != engine.ReasonStoppedByUser {
		t.Errorf("stopped reason %q, want %q", st.StoppedReason, engine.ReasonStoppedByUser)
	}
	if processAlive(pid) {
		t.Errorf("task reported STOPPED while its container process %d still runs", pid)
	}
	assertNoNetns(t, h)
	keys, _ := outboxKeys(t, a, task.Arn)
	if len(keys) < 2 || keys[len(keys)-2] != "main/STOPPED" || keys[len(keys)-1] != "task/STOPPED" {
		t.Errorf("outbox %v: want the container's STOPPED before the task's", keys)
	}
}

// TestCleanupRetried proves that a task clean-up that fails (containerd is
// killed just as it begins) is retried with backoff until it succeeds, and
// that a clean-up still pending when the agent stops is done by the next
// agent: the record stays until then (issue 23, item 4). Before, the
// failure was logged once, the record deleted, and the container and its
// snapshot stayed.
func TestCleanupRetried(t *testing.T) {
	h, own, img := ownContainerdHost(t)
	ct := ctrd{cli: own.Client(t), ctx: namespaces.WithNamespace(context.Background(), h.Namespace)}

	for _, restart := range []bool{false, true} {
		name := "same agent"
		if restart {
			name = "after an agent restart"
		}
		t.Run(name, func(t *testing.T) {
			task := oneContainerTask("clean-"+randomHex(3), img.Ref, []string{"/bin/sh", "-c", "exit 0"}, "{}")
			var once sync.Once
			hook := func(ctx context.Context, s engine.Step) {
				if s.Name == "cleanup" && !s.Done && s.TaskARN == task.Arn {
					once.Do(func() { own.Kill(t) })
				}
			}
			t.Cleanup(func() {
				// A failure before the restart below leaves containerd to
				// the next case.
				if !own.Running() {
					own.Restart(t)
				}
			})
			cfg := h.config(t)
			cfg.Containers.TaskCleanupWait = time.Second
			a, stop := h.startAgent(t, cfg, agent.WithStepHook(hook))
			handle(t, a, payload(task))
			st := waitTask(t, a, task.Arn, "a failed clean-up", 2*time.Minute, func(st engine.TaskState) bool { return st.CleanupRetries >= 2 })
			t.Logf("clean-up pending: retries=%d last error %q", st.CleanupRetries, st.CleanupError)
			if n := metricInt(t, a, `berth_retries_pending{op="cleanup"}`); n != 1 {
				t.Errorf(`berth_retries_pending{op="cleanup"} = %d, want 1`, n)
			}
			if restart {
				stop()
				db, err := state.OpenDir(h.DataDir, state.Options{})
				if err != nil {
					t.Fatal(err)
				}
				records, err := db.Tasks()
				db.Close()
				if err != nil || len(records) != 1 {
					t.Fatalf("stored task records after the agent stopped with a clean-up pending: %d (%v), want the task's", len(records), err)
				}
				own.Restart(t)
				a, stop = h.startAgent(t, cfg)
			} else {
				own.Restart(t)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for _, ok := a.Task(task.Arn); ok; _, ok = a.Task(task.Arn) {
				if time.Now().After(deadline) {
					st, _ := a.Task(task.Arn)
					t.Fatalf("task not cleaned up after containerd came back: %s, clean-up error %q", describe(st), st.CleanupError)
				}
				time.Sleep(100 * time.Millisecond)
			}
			stop()
			assertNothingLeaked(t, h, ct, task)
		})
	}
}
