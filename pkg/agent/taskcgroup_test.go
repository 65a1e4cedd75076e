package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/berth-dev/berth/internal/testenv"
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
	a := h.runAgent(t, cfg)
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

	// The task cgroup: /<namespace>/task-<task id> in every hierarchy.
	rel := filepath.Join(h.Namespace, "task-taskmem")
	pattern, limit, cpu := filepath.Join("/sys/fs/cgroup", "*", rel), filepath.Join("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes"), filepath.Join("/sys/fs/cgroup/cpu", rel, "cpu.cfs_quota_us")
	if cgroups.Mode() == cgroups.Unified {
		pattern, limit, cpu = filepath.Join("/sys/fs/cgroup", rel), filepath.Join("/sys/fs/cgroup", rel, "memory.max"), filepath.Join("/sys/fs/cgroup", rel, "cpu.max")
	}
	// Read before the clean-up, due 5 s after the stop.
	if b, err := os.ReadFile(limit); err != nil || strings.TrimSpace(string(b)) != "33554432" {
		t.Errorf("task memory limit %q (%v), want 33554432", b, err)
	}
	if b, err := os.ReadFile(cpu); err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), "25000") {
		t.Errorf("task cpu quota %q (%v), want 25000 (256 units of a 100 ms period)", b, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		left, _ := filepath.Glob(pattern)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task cgroup left a minute after the task's clean-up was due: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
