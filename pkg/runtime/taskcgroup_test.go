package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/container"
)

// taskCgroupFile is the host path of a file of the task cgroup name in the
// v1 controller's hierarchy (or the unified one).
func (tr *testRuntime) taskCgroupFile(t *testing.T, name, v1Controller, file string) string {
	t.Helper()
	path, err := tr.taskCgroupPath(name)
	if err != nil {
		t.Fatal(err)
	}
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join(cgroupMount, path, file)
	}
	return filepath.Join(cgroupMount, v1Controller, path, file)
}

// taskCgroupLeft lists the directories of the task cgroup name still on the
// host, in any hierarchy.
func (tr *testRuntime) taskCgroupLeft(t *testing.T, name string) []string {
	t.Helper()
	path, err := tr.taskCgroupPath(name)
	if err != nil {
		t.Fatal(err)
	}
	pattern := filepath.Join(cgroupMount, "*", path)
	if cgroups.Mode() == cgroups.Unified {
		pattern = filepath.Join(cgroupMount, path)
	}
	left, _ := filepath.Glob(pattern)
	return left
}

// cgroupStat reads one counter of a cgroup's stat file ("nr_throttled").
func cgroupStat(t *testing.T, file, key string) int64 {
	t.Helper()
	for _, line := range strings.Split(readTrim(t, file), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", file, line, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", file, key)
	return 0
}

func TestTaskCgroupBoundsTheTasksContainers(t *testing.T) {
	if !TaskCgroupsSupported() {
		t.Fatal("this host's cgroups cannot hold task cgroups; the test would prove nothing")
	}
	tr := newTestRuntime(t, nil)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "rt/taskcg", testenv.ImageSpec{Cmd: []string{"/bin/sh", "-c", "sleep 300"}})
	tr.pull(t, img.Ref)

	t.Run("memory: a container without a limit of its own is OOM-killed at the task's", func(t *testing.T) {
		tc := &container.TaskCgroup{Name: "mem", MemoryLimit: 32 << 20}
		// tail keeps an ever-growing "line" from /dev/zero in memory.
		st, _ := tr.run(t, container.Spec{Image: img.Ref, Command: []string{"/bin/tail", "/dev/zero"}, TaskCgroup: tc})
		if !st.OOMKilled || st.ExitCode != 137 {
			t.Errorf("exit = %+v, want OOMKilled with code 137", st)
		}
		if left := tr.taskCgroupLeft(t, "mem"); len(left) > 0 {
			t.Errorf("task cgroup left after its only container was removed: %v", left)
		}
	})

	t.Run("cpu quota throttles, pids.max caps, both containers share the cgroup", func(t *testing.T) {
		// 0.25 vCPU: 25 ms of every 100 ms.
		tc := &container.TaskCgroup{Name: "cpu", CPUQuota: 25000, CPUPeriod: 100000, MemoryLimit: 64 << 20, PidsLimit: 12}
		busy := container.Spec{Image: img.Ref, Command: []string{"/bin/sh", "-c", "while :; do :; done"}, TaskCgroup: tc}
		idle := container.Spec{Image: img.Ref, TaskCgroup: tc}
		ids := []string{tr.create(t, &busy), tr.create(t, &idle)}
		for _, id := range ids {
			defer tr.Remove(context.Background(), id)
			if _, err := tr.Start(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			want, _ := tr.taskCgroupPath("cpu")
			if got := filepath.Dir(tr.cgroupFile(t, id, "cpu", "x")); filepath.Base(filepath.Dir(got)) != filepath.Base(want) {
				t.Errorf("container %s's cgroup %s is not below the task cgroup %s", id, got, want)
			}
		}
		var quota, mem, pids string
		if cgroups.Mode() == cgroups.Unified {
			quota = readTrim(t, tr.taskCgroupFile(t, "cpu", "", "cpu.max"))
			mem = readTrim(t, tr.taskCgroupFile(t, "cpu", "", "memory.max"))
			pids = readTrim(t, tr.taskCgroupFile(t, "cpu", "", "pids.max"))
			if quota != "25000 100000" {
				t.Errorf("cpu.max = %q, want 25000 100000", quota)
			}
		} else {
			quota = readTrim(t, tr.taskCgroupFile(t, "cpu", "cpu", "cpu.cfs_quota_us"))
			period := readTrim(t, tr.taskCgroupFile(t, "cpu", "cpu", "cpu.cfs_period_us"))
			mem = readTrim(t, tr.taskCgroupFile(t, "cpu", "memory", "memory.limit_in_bytes"))
			pids = readTrim(t, tr.taskCgroupFile(t, "cpu", "pids", "pids.max"))
			if quota != "25000" || period != "100000" {
				t.Errorf("cpu.cfs_quota_us = %s, cpu.cfs_period_us = %s; want 25000 and 100000", quota, period)
			}
		}
		if mem != "67108864" || pids != "12" {
			t.Errorf("memory limit %s, pids.max %s; want 67108864 and 12", mem, pids)
		}
		// The busy loop wants a whole CPU: the kernel throttles the task's
		// cgroup. Polled, not timed: nr_throttled counts periods.
		stat := tr.taskCgroupFile(t, "cpu", "cpu", "cpu.stat")
		deadline := time.Now().Add(30 * time.Second)
		for cgroupStat(t, stat, "nr_throttled") == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the task cgroup was never throttled: %s", readTrim(t, stat))
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Forks beyond pids.max fail inside the container; the two
		// containers' processes count together.
		res, err := tr.ExecWith(t.Context(), ids[1], ExecOptions{Timeout: 30 * time.Second,
			Args: []string{"/bin/sh", "-c", "i=0; while [ $i -lt 20 ]; do sleep 60 </dev/null >/dev/null 2>&1 & i=$((i+1)); done"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == 0 || !strings.Contains(string(res.Output), "fork") {
			t.Errorf("20 forks in a task with pids.max 12: exit %d, output %q; want a failed fork", res.ExitCode, res.Output)
		}
		if n, err := strconv.Atoi(readTrim(t, tr.taskCgroupFile(t, "cpu", "pids", "pids.current"))); err != nil || n > 12 {
			t.Errorf("pids.current of the task cgroup = %d (%v), above pids.max 12", n, err)
		}
		// Removing one container keeps the task cgroup for the other.
		if err := tr.Remove(t.Context(), ids[0]); err != nil {
			t.Fatal(err)
		}
		if left := tr.taskCgroupLeft(t, "cpu"); len(left) == 0 {
			t.Fatal("task cgroup removed while a container of the task runs in it")
		}
		if err := tr.RemoveTaskCgroup(t.Context(), "cpu"); err == nil {
			t.Error("RemoveTaskCgroup succeeded while a container of the task runs in it")
		}
		if err := tr.Remove(t.Context(), ids[1]); err != nil {
			t.Fatal(err)
		}
		if err := tr.RemoveTaskCgroup(t.Context(), "cpu"); err != nil {
			t.Errorf("RemoveTaskCgroup after the task's containers: %v", err)
		}
		if left := tr.taskCgroupLeft(t, "cpu"); len(left) > 0 {
			t.Errorf("task cgroup left: %v", left)
		}
	})

	t.Run("a task cgroup removed before its container starts comes back with its limits", func(t *testing.T) {
		tc := &container.TaskCgroup{Name: "again", MemoryLimit: 48 << 20}
		first := container.Spec{Image: img.Ref, Command: []string{"/bin/true"}, TaskCgroup: tc}
		if st, _ := tr.run(t, first); st.ExitCode != 0 {
			t.Fatalf("first container: exit %+v", st)
		}
		if err := tr.RemoveTaskCgroup(t.Context(), "again"); err != nil {
			t.Fatal(err)
		}
		second := container.Spec{Image: img.Ref, TaskCgroup: tc}
		id := tr.create(t, &second)
		defer tr.Remove(context.Background(), id)
		if _, err := tr.Start(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		file := tr.taskCgroupFile(t, "again", "memory", "memory.limit_in_bytes")
		if cgroups.Mode() == cgroups.Unified {
			file = tr.taskCgroupFile(t, "again", "", "memory.max")
		}
		if got := readTrim(t, file); got != "50331648" {
			t.Errorf("memory limit %s, want 50331648", got)
		}
	})

	t.Run("a bad task cgroup name is refused", func(t *testing.T) {
		for _, name := range []string{"", "..", "a/b"} {
			spec := container.Spec{ID: "badname", Image: img.Ref, TaskCgroup: &container.TaskCgroup{Name: name}}
			if err := tr.Create(t.Context(), spec); err == nil {
				tr.Remove(t.Context(), "badname")
				t.Errorf("Create with task cgroup name %q succeeded", name)
			}
		}
	})
	if _, err := os.Stat(filepath.Join(cgroupMount, "cpu", tr.ns)); err == nil && cgroups.Mode() != cgroups.Unified {
		entries, _ := os.ReadDir(filepath.Join(cgroupMount, "cpu", tr.ns))
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), taskCgroupPrefix) {
				t.Errorf("task cgroup %s left in the namespace", e.Name())
			}
		}
	}
}
