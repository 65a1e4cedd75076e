package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/berth-dev/berth/pkg/container"
)

// ErrExecTimeout is returned by Exec when the command outlived its timeout
// and was killed.
var ErrExecTimeout = errors.New("exec timed out")

// ErrNotRunning is returned by Exec and Stats for a container without a
// running task.
var ErrNotRunning = errors.New("container is not running")

// ExecOptions describe a command run inside a running container.
type ExecOptions struct {
	// Args is the command and its arguments (no shell is implied).
	Args []string
	// Env is added to the container's environment.
	Env []string
	// Timeout kills the command after this long; 0 means only ctx bounds it.
	Timeout time.Duration
	// MaxOutput caps the captured output in bytes; 0 means 64 KiB.
	MaxOutput int
}

// ExecResult is the outcome of an Exec.
type ExecResult struct {
	ExitCode uint32
	// Output is stdout and stderr interleaved, truncated to MaxOutput.
	Output []byte
}

// Exec runs args in the running container id with a timeout, as health
// checks do, and returns the command's exit code (-1 with an error). A
// container that does not exist is container.ErrNotFound (wrapped).
func (r *Runtime) Exec(ctx context.Context, id string, args []string, timeout time.Duration) (int, error) {
	res, err := r.ExecWith(ctx, id, ExecOptions{Args: args, Timeout: timeout})
	if err != nil {
		return -1, notFoundErr(err)
	}
	return int(res.ExitCode), nil
}

// ExecWith runs a command in the running container id and waits for it,
// capturing its output. On timeout the command is killed and
// ErrExecTimeout returned.
func (r *Runtime) ExecWith(ctx context.Context, id string, opts ExecOptions) (ExecResult, error) {
	ctx = r.withNS(ctx)
	if len(opts.Args) == 0 {
		return ExecResult{}, fmt.Errorf("exec in %s: no command", id)
	}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return ExecResult{}, notFound(id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ExecResult{}, fmt.Errorf("exec in %s: %w", id, ErrNotRunning)
		}
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: read spec: %w", id, err)
	}
	pspec := *spec.Process
	pspec.Terminal = false
	pspec.Args = opts.Args
	pspec.Env = mergeEnv(pspec.Env, opts.Env)

	max := opts.MaxOutput
	if max <= 0 {
		max = 64 << 10
	}
	out := &cappedBuffer{max: max}
	execID := "exec-" + randomHex(8)
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		if errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
			return ExecResult{}, fmt.Errorf("exec in %s: %w: %w", id, ErrNotRunning, err)
		}
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	// Always delete the exec process: it holds IO and shim state.
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		proc.Delete(dctx, containerd.WithProcessKill)
	}()
	exitCh, err := proc.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: wait: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: start %v: %w", id, opts.Args, err)
	}
	var timeout <-chan time.Time
	if opts.Timeout > 0 {
		t := time.NewTimer(opts.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var timedOut error
	select {
	case st := <-exitCh:
		code, _, err := st.Result()
		if err != nil {
			return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
		}
		proc.IO().Wait()
		return ExecResult{ExitCode: code, Output: out.Bytes()}, nil
	case <-timeout:
		timedOut = fmt.Errorf("exec %v in %s: %w after %s", opts.Args, id, ErrExecTimeout, opts.Timeout)
	case <-ctx.Done():
		timedOut = fmt.Errorf("exec %v in %s: %w", opts.Args, id, ctx.Err())
	}
	proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
	select {
	case <-exitCh:
	case <-time.After(10 * time.Second):
	}
	return ExecResult{ExitCode: 137, Output: out.Bytes()}, timedOut
}

// mergeEnv returns base with overrides applied: a KEY in overrides replaces
// the same KEY in base, others are appended.
func mergeEnv(base, overrides []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range overrides {
		key, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if k, _, _ := strings.Cut(e, "="); k == key {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cappedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty command cannot grow the agent's memory.
type cappedBuffer struct {
	max int
	// mu guards buf: stdout and stderr are copied by two goroutines.
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// Stats are a container's resource usage, from its cgroup.
type Stats struct {
	Time time.Time
	// CPUUsageNanos is cumulative CPU time used, in nanoseconds.
	CPUUsageNanos uint64
	// MemoryUsageBytes is current usage including page cache;
	// MemoryCacheBytes is the page cache part of it.
	MemoryUsageBytes uint64
	MemoryCacheBytes uint64
	// MemoryLimitBytes is the effective limit (very large when unlimited).
	MemoryLimitBytes uint64
	// Pids is the number of processes.
	Pids uint64
	// MemoryInactiveFileBytes is cgroup v2's inactive_file (zero on v1).
	MemoryInactiveFileBytes uint64
	// MemoryMaxUsageBytes is the peak usage (cgroup v1 only).
	MemoryMaxUsageBytes uint64
	// BlockReadBytes and BlockWriteBytes are cumulative block I/O of the
	// container's cgroup, summed over devices.
	BlockReadBytes, BlockWriteBytes uint64
	// Networks are the counters of the interfaces in the container's
	// network namespace (loopback left out), by interface name; nil when
	// they could not be read (netstats.go).
	Networks map[string]NetworkCounters
}

// Stats reads CPU and memory usage of a running container (cgroup v1 or v2).
func (r *Runtime) Stats(ctx context.Context, id string) (Stats, error) {
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return Stats{}, notFound(id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Stats{}, fmt.Errorf("stats of %s: %w", id, ErrNotRunning)
		}
		return Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return Stats{}, fmt.Errorf("stats of %s: decode metrics: %w", id, err)
	}
	st := Stats{Time: m.Timestamp.AsTime()}
	switch m := v.(type) {
	case *v1.Metrics:
		st.CPUUsageNanos = m.GetCPU().GetUsage().GetTotal()
		st.MemoryUsageBytes = m.GetMemory().GetUsage().GetUsage()
		st.MemoryLimitBytes = m.GetMemory().GetUsage().GetLimit()
		st.MemoryCacheBytes = m.GetMemory().GetTotalCache()
		st.MemoryMaxUsageBytes = m.GetMemory().GetUsage().GetMax()
		st.Pids = m.GetPids().GetCurrent()
		for _, e := range m.GetBlkio().GetIoServiceBytesRecursive() {
			switch strings.ToLower(e.GetOp()) {
			case "read":
				st.BlockReadBytes += e.GetValue()
			case "write":
				st.BlockWriteBytes += e.GetValue()
			}
		}
	case *v2.Metrics:
		st.CPUUsageNanos = m.GetCPU().GetUsageUsec() * 1000
		st.MemoryUsageBytes = m.GetMemory().GetUsage()
		st.MemoryLimitBytes = m.GetMemory().GetUsageLimit()
		st.MemoryCacheBytes = m.GetMemory().GetFile()
		st.MemoryInactiveFileBytes = m.GetMemory().GetInactiveFile()
		st.Pids = m.GetPids().GetCurrent()
		for _, e := range m.GetIo().GetUsage() {
			st.BlockReadBytes += e.GetRbytes()
			st.BlockWriteBytes += e.GetWbytes()
		}
	default:
		return Stats{}, fmt.Errorf("stats of %s: unknown metrics type %T", id, v)
	}
	st.Networks = netDevCounters(task.Pid())
	return st, nil
}

// TaskState is the state of a container's task.
type TaskState string

// Task states; TaskNone means the container has no task (never started, or
// exited and cleaned up — see ContainerInfo.Exit).
const (
	TaskNone    TaskState = ""
	TaskCreated TaskState = "created"
	TaskRunning TaskState = "running"
	TaskStopped TaskState = "stopped"
	TaskPaused  TaskState = "paused"
	TaskUnknown TaskState = "unknown"
)

// ContainerInfo describes one container found by List.
type ContainerInfo struct {
	ID     string
	Image  string
	Labels map[string]string
	State  TaskState
	Pid    uint32
	// Exit is the recorded exit of a container that ran and stopped.
	Exit *ExitStatus
}

// List returns the containers carrying the label labelKey (any value), as
// recovery sees them: running (also paused or of unknown state), exited with
// their exit, or created and never started.
func (r *Runtime) List(ctx context.Context, labelKey string) ([]container.Observed, error) {
	infos, err := r.Containers(ctx, nil)
	if err != nil {
		return nil, err
	}
	var out []container.Observed
	for _, ci := range infos {
		if _, ok := ci.Labels[labelKey]; !ok {
			continue
		}
		o := container.Observed{ID: ci.ID, Labels: ci.Labels, PID: int(ci.Pid)}
		switch {
		case ci.State == TaskRunning || ci.State == TaskPaused || ci.State == TaskUnknown:
			o.Running = true
		case ci.Exit != nil:
			o.Exited = true
			o.Exit = container.Exit{Code: int(ci.Exit.ExitCode), At: ci.Exit.ExitedAt, OOMKill: ci.Exit.OOMKilled}
		case ci.State == TaskStopped:
			o.Exited = true
		}
		out = append(out, o)
	}
	return out, nil
}

// Containers returns the containers carrying all the given labels.
func (r *Runtime) Containers(ctx context.Context, labels map[string]string) ([]ContainerInfo, error) {
	ctx = r.withNS(ctx)
	var filters []string
	if len(labels) > 0 {
		var parts []string
		for k, v := range labels {
			parts = append(parts, fmt.Sprintf("labels.%q==%q", k, v))
		}
		filters = append(filters, strings.Join(parts, ","))
	}
	cs, err := r.client.Containers(ctx, filters...)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]ContainerInfo, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("list containers: %s: %w", c.ID(), err)
		}
		ci := ContainerInfo{ID: c.ID(), Image: info.Image, Labels: info.Labels}
		if st, ok := parseExitLabel(info.Labels[labelExit]); ok {
			ci.Exit = &st
		}
		if task, err := c.Task(ctx, nil); err == nil {
			ci.Pid = task.Pid()
			if s, err := task.Status(ctx); err == nil {
				ci.State = TaskState(s.Status)
				if s.Status == containerd.Stopped && ci.Exit == nil {
					ci.Exit = &ExitStatus{ExitCode: s.ExitStatus, ExitedAt: s.ExitTime}
				}
			} else {
				ci.State = TaskUnknown
			}
		}
		out = append(out, ci)
	}
	return out, nil
}
