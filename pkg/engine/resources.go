package engine

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/pkg/container"
)

// resources accounts the CPU, memory and static host ports that admitted
// tasks hold, so that a task waits (PENDING) while the host lacks them.
// It is guarded by Engine.mu.
type resources struct {
	cpuTotal, memTotal int64 // zero means unlimited
	cpuUsed, memUsed   int64
	held               map[string]taskResources
	ports              map[string]string // "tcp/80" → task ARN
}

type taskResources struct {
	cpu, mem int64
	ports    []string
}

func newResources(cpu, mem int64) resources {
	return resources{cpuTotal: cpu, memTotal: mem, held: map[string]taskResources{}, ports: map[string]string{}}
}

// need is what a task asks for: its task-level size, or the sum of its
// containers', and every static host port.
func need(def *TaskDef) taskResources {
	var tr taskResources
	var cpu, mem int64
	for _, c := range def.Containers {
		cpu += c.CPU
		if c.MemoryMiB > 0 {
			mem += c.MemoryMiB
		} else {
			// With only a soft limit, ECS accounts the reservation.
			mem += (c.Spec.MemoryReservation + mib - 1) / mib
		}
		for _, p := range c.Ports {
			switch def.NetworkMode {
			case "host":
				// The container binds the host's port itself.
				p.HostPort = p.ContainerPort
			case "awsvpc", "none":
				continue
			}
			if p.HostPort != 0 {
				tr.ports = append(tr.ports, portKey(p))
			}
		}
	}
	tr.cpu, tr.mem = def.CPU, def.MemoryMiB
	if tr.cpu == 0 {
		tr.cpu = cpu
	}
	if tr.mem == 0 {
		tr.mem = mem
	}
	return tr
}

func portKey(p container.PortMapping) string {
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%s/%d", proto, p.HostPort)
}

// admit reserves what the task needs and reports whether it fits. A task
// that can never fit (larger than the host) is admitted=false, fatal=reason.
func (r *resources) admit(arn string, def *TaskDef) (ok bool, fatal string) {
	if _, held := r.held[arn]; held {
		return true, ""
	}
	tr := need(def)
	if r.cpuTotal > 0 && tr.cpu > r.cpuTotal {
		return false, fmt.Sprintf("task needs %d CPU units, host has %d", tr.cpu, r.cpuTotal)
	}
	if r.memTotal > 0 && tr.mem > r.memTotal {
		return false, fmt.Sprintf("task needs %d MiB memory, host has %d", tr.mem, r.memTotal)
	}
	seen := map[string]bool{}
	for _, p := range tr.ports {
		if seen[p] {
			return false, fmt.Sprintf("host port %s requested twice", p)
		}
		seen[p] = true
	}
	if r.cpuTotal > 0 && r.cpuUsed+tr.cpu > r.cpuTotal {
		return false, ""
	}
	if r.memTotal > 0 && r.memUsed+tr.mem > r.memTotal {
		return false, ""
	}
	for _, p := range tr.ports {
		if _, used := r.ports[p]; used {
			return false, ""
		}
	}
	r.cpuUsed += tr.cpu
	r.memUsed += tr.mem
	for _, p := range tr.ports {
		r.ports[p] = arn
	}
	r.held[arn] = tr
	return true, ""
}

// release frees what the task held; it reports whether anything was freed.
func (r *resources) release(arn string) bool {
	tr, ok := r.held[arn]
	if !ok {
		return false
	}
	r.cpuUsed -= tr.cpu
	r.memUsed -= tr.mem
	for _, p := range tr.ports {
		delete(r.ports, p)
	}
	delete(r.held, arn)
	return true
}

// TaskCgroups configures task cgroups, as the ECS agent's
// ECS_ENABLE_TASK_CPU_MEM_LIMIT does: a task with task-level cpu or memory
// (or any task, when PidsLimit is set) gets a cgroup holding all its
// containers, with cpu.max from the task's cpu units and memory.max from
// its memory.
type TaskCgroups struct {
	// Enabled is ECS_ENABLE_TASK_CPU_MEM_LIMIT (and the runtime able to
	// make task cgroups).
	Enabled bool
	// CPUPeriod is ECS_CGROUP_CPU_PERIOD; zero means 100ms.
	CPUPeriod time.Duration
	// PidsLimit is ECS_TASK_PIDS_LIMIT: pids.max of each task cgroup; 0
	// means none.
	PidsLimit int64
	// PropagateMemory is ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2 on a
	// cgroup v2 host: a container without a memory limit of its own gets
	// the task's memory as its limit.
	PropagateMemory bool
}

// defaultCPUPeriod is ECS_CGROUP_CPU_PERIOD's default; minCPUQuota the
// kernel's smallest cfs quota (1ms).
const (
	defaultCPUPeriod = 100 * time.Millisecond
	minCPUQuota      = 1000
)

// taskCgroupName names the task cgroup of a task ARN.
func taskCgroupName(arn string) string { return sanitizeID(TaskID(arn)) }

// cgroupFor returns the task cgroup of def, or nil when it gets none. The
// quota is the task's share of CPUs over one period, as the ECS agent
// computes it: cpu/1024 × period.
func (o TaskCgroups) cgroupFor(def *TaskDef) *container.TaskCgroup {
	if !o.Enabled || (def.CPU <= 0 && def.MemoryMiB <= 0 && o.PidsLimit <= 0) {
		return nil
	}
	tc := &container.TaskCgroup{Name: taskCgroupName(def.ARN), PidsLimit: o.PidsLimit}
	if def.MemoryMiB > 0 {
		tc.MemoryLimit = def.MemoryMiB * mib
	}
	if def.CPU > 0 {
		period := o.CPUPeriod
		if period <= 0 {
			period = defaultCPUPeriod
		}
		tc.CPUPeriod = uint64(period / time.Microsecond)
		tc.CPUQuota = max(def.CPU*int64(tc.CPUPeriod)/1024, minCPUQuota)
	}
	return tc
}

// Metrics are the engine's counters for /metrics.
type Metrics struct {
	Pulls        int64
	PullFailures int64
	Starts       int64
	Failures     int64
	// RuntimeRetries counts pulls, creates and starts retried because the
	// runtime could not be reached; StopRetries failed container stops and
	// CleanupRetries failed task clean-ups, each retried with backoff.
	RuntimeRetries int64
	StopRetries    int64
	CleanupRetries int64
}

// Metrics returns a copy of the counters.
func (e *Engine) Metrics() Metrics {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.metrics
}

func (e *Engine) count(f func(m *Metrics)) {
	e.mu.Lock()
	f(&e.metrics)
	e.mu.Unlock()
}

// admit asks for the task's resources; see resources.admit.
func (e *Engine) admit(arn string, def *TaskDef) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.res.admit(arn, def)
}

// release frees the task's resources and wakes every task waiting for them.
func (e *Engine) release(arn string) {
	e.mu.Lock()
	freed := e.res.release(arn)
	var waiting []*taskRunner
	if freed {
		for _, r := range e.tasks {
			waiting = append(waiting, r)
		}
	}
	e.mu.Unlock()
	for _, r := range waiting {
		r.poke()
	}
}
