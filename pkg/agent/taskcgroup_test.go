package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/runtime"
)

// TestTaskMemoryBoundsTheTask: with ECS_ENABLE_TASK_CPU_MEM_LIMIT (the
// default) a container without a memory limit of its own is OOM-killed at
// the task's memory and stops with ECS's reason; the task cgroup holds the
// task's limits until the task's clean-up removes it.
func TestTaskMemoryBoundsTheTask(t *testing.T) {
	if !runtime.TaskCgroupsSupported() {
		t.Fatal("this host's cgroups cannot hold task cgroups; the test would prove nothing")
	}
	h := newHostEnv(t)
	cfg := h.config(t)
	if !cfg.Tasks.CPUMemLimit {
		t.Fatal("ECS_ENABLE_TASK_CPU_MEM_LIMIT is off by default")
	}
	cfg.Containers.TaskCleanupWait = 5 * time.Second
	a, stopAgent := h.startAgent(t, cfg)
	img := testenv.BuildImage(t, testenv.Registry(t), "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})

	task := oneContainerTask("taskmem", img.Ref, []string{"/bin/tail", "/dev/zero"}, "{}")
	task.Containers[0].Memory = 0
	task.Cpu, task.Memory = 256, 32
	handle(t, a, payload(task))
	st := waitTask(t, a, task.Arn, "STOPPED", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	c := container(st, "main")
	if c.Reason != engine.ReasonOOM || c.ExitCode == nil || *c.ExitCode != 137 {
		t.Fatalf("container stopped with exit %v, reason %q; want 137 and %q", exitOf(c), c.Reason, engine.ReasonOOM)
	}

	// Read before the clean-up, due 5 s after the stop.
	cg := taskCgroupOf(h, "taskmem")
	cg.check(t, "33554432", "25000") // 256 units of a 100 ms period
	cg.waitGone(t)

	t.Run("a task running across an agent restart loses its cgroup at its clean-up", func(t *testing.T) {
		task := oneContainerTask("taskkeep", img.Ref, []string{"/bin/sleep", "600"}, "{}")
		task.Containers[0].Memory = 0
		task.Cpu, task.Memory = 512, 64
		handle(t, a, payload(task))
		waitTask(t, a, task.Arn, "RUNNING", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
		cg := taskCgroupOf(h, "taskkeep")
		cg.check(t, "67108864", "50000")
		stopAgent()
		a, _ := h.startAgent(t, cfg)
		stopped := *task
		stopped.DesiredStatus = api.StatusStopped
		handle(t, a, payload(&stopped))
		waitTask(t, a, task.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
		cg.waitGone(t)
	})
}

// taskCgroup is where a task's cgroup lives on this host:
// /<namespace>/task-<task id> in every hierarchy.
type taskCgroup struct{ pattern, limit, cpu string }

func taskCgroupOf(h *hostEnv, taskID string) taskCgroup {
	rel := filepath.Join(h.Namespace, "task-"+taskID)
	if cgroups.Mode() == cgroups.Unified {
		return taskCgroup{filepath.Join("/sys/fs/cgroup", rel), filepath.Join("/sys/fs/cgroup", rel, "memory.max"), filepath.Join("/sys/fs/cgroup", rel, "cpu.max")}
	}
	return taskCgroup{filepath.Join("/sys/fs/cgroup", "*", rel), filepath.Join("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes"), filepath.Join("/sys/fs/cgroup/cpu", rel, "cpu.cfs_quota_us")}
}

// check reads the task cgroup's memory limit and cpu quota.
func (c taskCgroup) check(t *testing.T, memory, quota string) {
	t.Helper()
	if b, err := os.ReadFile(c.limit); err != nil || strings.TrimSpace(string(b)) != memory {
		t.Errorf("task memory limit %q (%v), want %s", b, err, memory)
	}
	if b, err := os.ReadFile(c.cpu); err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), quota) {
		t.Errorf("task cpu quota %q (%v), want %s", b, err, quota)
	}
}

// waitGone waits until the task's clean-up removed the cgroup from every
// hierarchy.
func (c taskCgroup) waitGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		left, _ := filepath.Glob(c.pattern)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task cgroup left a minute after the task's clean-up was due: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
