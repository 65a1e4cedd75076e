package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/pkg/container"
)

// Task cgroups. A container whose Spec names a TaskCgroup gets the cgroup
// /<namespace>/task-<name>/<id> instead of /<namespace>/<id>; the task
// cgroup's cpu, memory and pids limits bound all the task's containers
// together, as the ECS agent's task cgroup does. Start creates the task
// cgroup (again) and writes its limits just before the container's process
// is made, from a label Create put on the container, so that a cgroup
// removed meanwhile (a clean-up, a host reboot) comes back with its limits.
// RemoveTaskCgroup removes it at the task's clean-up; Remove also removes
// it once its last container is gone (for containers removed without their
// task, such as recovery's orphans).

// cgroupMount is where the host's cgroup hierarchies are mounted.
const cgroupMount = "/sys/fs/cgroup"

// labelTaskCgroup holds the container's TaskCgroup as JSON.
const labelTaskCgroup = "io.berth.task-cgroup"

// taskCgroupPrefix starts the name of a task cgroup's directory; container
// IDs never start with it (the engine's start with the task ID).
const taskCgroupPrefix = "task-"

// TaskCgroupsSupported reports whether this host's cgroups can hold task
// cgroups: cgroup v2, or cgroup v1 with the cpu, memory and pids
// controllers mounted under /sys/fs/cgroup.
func TaskCgroupsSupported() bool {
	if cgroups.Mode() == cgroups.Unified {
		return true
	}
	for _, c := range []string{"cpu", "memory", "pids"} {
		if _, err := os.Stat(filepath.Join(cgroupMount, c, "cgroup.procs")); err != nil {
			return false
		}
	}
	return true
}

// UnifiedCgroups reports whether the host runs cgroup v2 only.
func UnifiedCgroups() bool { return cgroups.Mode() == cgroups.Unified }

// taskCgroupPath is the cgroup path (relative to a hierarchy's root) of the
// task cgroup name.
func (r *Runtime) taskCgroupPath(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("task cgroup name %q: empty or not a single path element", name)
	}
	return "/" + r.opts.Namespace + "/" + taskCgroupPrefix + name, nil
}

// taskCgroupOpts checks tc and returns the spec options that place the
// container in it and the label that Start reads it back from.
func (r *Runtime) taskCgroupOpts(id string, tc *container.TaskCgroup) (oci.SpecOpts, string, error) {
	if !TaskCgroupsSupported() {
		return nil, "", fmt.Errorf("task cgroup: %w: this host has neither cgroup v2 nor the cgroup v1 cpu, memory and pids controllers", ErrUnsupported)
	}
	path, err := r.taskCgroupPath(tc.Name)
	if err != nil {
		return nil, "", err
	}
	if tc.CPUQuota < 0 || tc.MemoryLimit < 0 || tc.PidsLimit < 0 {
		return nil, "", fmt.Errorf("task cgroup %s: negative cpu quota, memory or pids limit", tc.Name)
	}
	if tc.CPUQuota > 0 && tc.CPUPeriod == 0 {
		return nil, "", fmt.Errorf("task cgroup %s: a cpu quota needs a cpu period", tc.Name)
	}
	b, err := json.Marshal(tc)
	if err != nil {
		return nil, "", fmt.Errorf("task cgroup %s: %w", tc.Name, err)
	}
	cgPath := path + "/" + id
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.CgroupsPath = cgPath
		return nil
	}, string(b), nil
}

// ensureTaskCgroup creates the task cgroup that the container's label names
// (if it has one) and writes its limits. It is idempotent: every container
// of the task calls it when it starts.
func (r *Runtime) ensureTaskCgroup(labels map[string]string) error {
	v := labels[labelTaskCgroup]
	if v == "" {
		return nil
	}
	var tc container.TaskCgroup
	if err := json.Unmarshal([]byte(v), &tc); err != nil {
		return fmt.Errorf("task cgroup label %s: %w", labelTaskCgroup, err)
	}
	path, err := r.taskCgroupPath(tc.Name)
	if err != nil {
		return err
	}
	if cgroups.Mode() == cgroups.Unified {
		res := &cgroup2.Resources{}
		if tc.CPUQuota > 0 {
			quota, period := tc.CPUQuota, tc.CPUPeriod
			res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)}
		}
		if tc.MemoryLimit > 0 {
			limit := tc.MemoryLimit
			res.Memory = &cgroup2.Memory{Max: &limit}
		}
		if tc.PidsLimit > 0 {
			res.Pids = &cgroup2.Pids{Max: tc.PidsLimit}
		}
		if _, err := cgroup2.NewManager(cgroupMount, path, res); err != nil {
			return fmt.Errorf("task cgroup %s: %w", path, err)
		}
		return nil
	}
	res := &specs.LinuxResources{}
	if tc.CPUQuota > 0 {
		quota, period := tc.CPUQuota, tc.CPUPeriod
		res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if tc.MemoryLimit > 0 {
		limit := tc.MemoryLimit
		res.Memory = &specs.LinuxMemory{Limit: &limit}
	}
	if tc.PidsLimit > 0 {
		res.Pids = &specs.LinuxPids{Limit: tc.PidsLimit}
	}
	// Only the controllers that carry limits; runc makes the task cgroup
	// in the other hierarchies when it makes the container's below it.
	hierarchy := func() ([]cgroup1.Subsystem, error) {
		return []cgroup1.Subsystem{cgroup1.NewCpu(cgroupMount), cgroup1.NewMemory(cgroupMount), cgroup1.NewPids(cgroupMount)}, nil
	}
	if _, err := cgroup1.New(cgroup1.StaticPath(path), res, cgroup1.WithHierarchy(hierarchy)); err != nil {
		return fmt.Errorf("task cgroup %s: %w", path, err)
	}
	return nil
}

// RemoveTaskCgroup removes the task cgroup name from every hierarchy once
// the task's containers are removed; one that does not exist is done. It
// fails while a container of the task still runs. The engine calls it at
// the task's clean-up, after removing the containers.
func (r *Runtime) RemoveTaskCgroup(ctx context.Context, name string) error {
	path, err := r.taskCgroupPath(name)
	if err != nil {
		return err
	}
	for _, dir := range cgroupDirs(path) {
		// The first busy one tells: the others are busy too.
		if err := removeCgroupDir(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

// removeEmptyTaskCgroup removes the task cgroup of a removed container if
// no other container is left in it; a busy one stays for its task's
// clean-up.
func (r *Runtime) removeEmptyTaskCgroup(cgroupsPath string) {
	parent := filepath.Dir(cgroupsPath)
	if filepath.Dir(parent) != "/"+r.opts.Namespace || !strings.HasPrefix(filepath.Base(parent), taskCgroupPrefix) {
		return
	}
	for _, dir := range cgroupDirs(parent) {
		_ = os.Remove(dir) // EBUSY while other containers of the task remain
	}
}

// cgroupDirs returns the directories that the cgroup path maps to: one
// under cgroup v2, one per mounted hierarchy (the unified one of a hybrid
// host included) under v1.
func cgroupDirs(path string) []string {
	if cgroups.Mode() == cgroups.Unified {
		return []string{filepath.Join(cgroupMount, path)}
	}
	entries, err := os.ReadDir(cgroupMount)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		// cpu and cpuacct are often symlinks to "cpu,cpuacct": the
		// directory behind them is removed once.
		if e.IsDir() {
			out = append(out, filepath.Join(cgroupMount, e.Name(), path))
		}
	}
	return out
}

// removeCgroupDir removes one cgroup directory, waiting briefly while it
// is busy: the kernel frees a cgroup a moment after its last process is
// reaped.
func removeCgroupDir(ctx context.Context, dir string) error {
	for attempt := 1; ; attempt++ {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || attempt == 40 {
			return fmt.Errorf("remove task cgroup %s: %w", dir, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("remove task cgroup %s: %w (%w)", dir, err, ctx.Err())
		}
	}
}

// containerCgroupsPath returns the cgroup path of a container's spec, or "".
func containerCgroupsPath(ctx context.Context, c containerd.Container) string {
	s, err := c.Spec(ctx)
	if err != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}
