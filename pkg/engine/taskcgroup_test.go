package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

// cgroupRuntime is the fake runtime with task cgroups: it records the
// task cgroups the engine removes.
type cgroupRuntime struct {
	*fakeRuntime
	mu      sync.Mutex
	removed []string
}

func (c *cgroupRuntime) RemoveTaskCgroup(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed = append(c.removed, name)
	return nil
}

func TestTaskCgroupFromTaskCPUAndMemory(t *testing.T) {
	var rt *cgroupRuntime
	h := newHarness(t, func(o *engine.Options) {
		rt = &cgroupRuntime{fakeRuntime: o.Runtime.(*fakeRuntime)}
		o.Runtime = rt
		o.CleanupWait = 10 * time.Millisecond
		o.TaskCgroups = engine.TaskCgroups{Enabled: true, CPUPeriod: 50 * time.Millisecond, PidsLimit: 100, PropagateMemory: true}
	})
	def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/sized",
		engine.ContainerDef{Name: "free", Image: "img", Essential: true},
		engine.ContainerDef{Name: "own", Image: "img", Essential: true, MemoryMiB: 64, Spec: container.Spec{MemoryLimit: 64 << 20}})
	def.CPU, def.MemoryMiB = 512, 256
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)
	// 512 units are half a vCPU: 25 ms of every 50 ms period.
	want := container.TaskCgroup{Name: "sized", CPUQuota: 25000, CPUPeriod: 50000, MemoryLimit: 256 << 20, PidsLimit: 100}
	h.rt.mu.Lock()
	free := h.rt.containers[engine.ContainerID(def.ARN, "free")].spec
	own := h.rt.containers[engine.ContainerID(def.ARN, "own")].spec
	h.rt.mu.Unlock()
	for _, s := range []container.Spec{free, own} {
		if s.TaskCgroup == nil || *s.TaskCgroup != want {
			t.Errorf("%s: task cgroup %+v, want %+v", s.ID, s.TaskCgroup, want)
		}
	}
	if free.MemoryLimit != 256<<20 || own.MemoryLimit != 64<<20 {
		t.Errorf("memory limits %d and %d; want the task's 256 MiB propagated to the container without one, 64 MiB kept", free.MemoryLimit, own.MemoryLimit)
	}
	h.apply(def, engine.TaskStopped)
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := h.eng.Task(def.ARN); ok; _, ok = h.eng.Task(def.ARN) {
		if time.Now().After(deadline) {
			t.Fatal("task not cleaned up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rt.mu.Lock()
	removed := slices.Clone(rt.removed)
	rt.mu.Unlock()
	if !slices.Equal(removed, []string{"sized"}) {
		t.Errorf("task cgroups removed at clean-up: %q, want [sized]", removed)
	}
}

func TestTaskCgroupOnlyWhenEnabledAndSized(t *testing.T) {
	for name, c := range map[string]struct {
		opts     engine.TaskCgroups
		cpu, mem int64
		want     *container.TaskCgroup
	}{
		"disabled":                 {opts: engine.TaskCgroups{PidsLimit: 10}, cpu: 1024, mem: 128},
		"no task size, no pids":    {opts: engine.TaskCgroups{Enabled: true}},
		"pids limit alone":         {opts: engine.TaskCgroups{Enabled: true, PidsLimit: 10}, want: &container.TaskCgroup{Name: "t", PidsLimit: 10}},
		"default period":           {opts: engine.TaskCgroups{Enabled: true}, cpu: 2048, want: &container.TaskCgroup{Name: "t", CPUQuota: 200000, CPUPeriod: 100000}},
		"quota at least 1ms":       {opts: engine.TaskCgroups{Enabled: true, CPUPeriod: 8 * time.Millisecond}, cpu: 64, want: &container.TaskCgroup{Name: "t", CPUQuota: 1000, CPUPeriod: 8000}},
		"memory without propagate": {opts: engine.TaskCgroups{Enabled: true}, mem: 32, want: &container.TaskCgroup{Name: "t", MemoryLimit: 32 << 20}},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(o *engine.Options) { o.TaskCgroups = c.opts })
			def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/t", engine.ContainerDef{Name: "c", Image: "img", Essential: true})
			def.CPU, def.MemoryMiB = c.cpu, c.mem
			h.apply(def, engine.TaskRunning)
			h.waitStatus(def.ARN, engine.TaskRunning)
			h.rt.mu.Lock()
			spec := h.rt.containers[engine.ContainerID(def.ARN, "c")].spec
			h.rt.mu.Unlock()
			if (spec.TaskCgroup == nil) != (c.want == nil) || (c.want != nil && *spec.TaskCgroup != *c.want) {
				t.Errorf("task cgroup %+v, want %+v", spec.TaskCgroup, c.want)
			}
			if spec.MemoryLimit != 0 {
				t.Errorf("memory limit %d without ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2", spec.MemoryLimit)
			}
		})
	}
}
