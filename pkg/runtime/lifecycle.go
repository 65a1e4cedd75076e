package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/containerd/cgroups/v3"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/moby/sys/signal"
)

// ErrContainerNotFound is returned for IDs with no container.
var ErrContainerNotFound = errors.New("container not found")

// ErrNoTask is returned by Attach for a container that was created but never
// started (or whose task is gone without a recorded exit).
var ErrNoTask = errors.New("container has no task")

// labelExit records a container's exit on the container itself, so that it
// survives the task's deletion and an agent restart.
const labelExit = "io.berth.exit"

// ExitStatus is how a container's main process ended.
type ExitStatus struct {
	// ExitCode is the process's exit code (128+signal when killed).
	ExitCode uint32
	// ExitedAt is when it ended.
	ExitedAt time.Time
	// OOMKilled reports that the kernel's OOM killer acted in the
	// container's cgroup.
	OOMKilled bool
}

func (s ExitStatus) label() string {
	return fmt.Sprintf("%d|%s|%t", s.ExitCode, s.ExitedAt.UTC().Format(time.RFC3339Nano), s.OOMKilled)
}

func parseExitLabel(v string) (ExitStatus, bool) {
	parts := strings.Split(v, "|")
	if len(parts) != 3 {
		return ExitStatus{}, false
	}
	code, err1 := strconv.ParseUint(parts[0], 10, 32)
	at, err2 := time.Parse(time.RFC3339Nano, parts[1])
	oom, err3 := strconv.ParseBool(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return ExitStatus{}, false
	}
	return ExitStatus{ExitCode: uint32(code), ExitedAt: at, OOMKilled: oom}, true
}

func notFound(id string, err error) error {
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: %w", id, ErrContainerNotFound)
	}
	return fmt.Errorf("container %s: %w", id, err)
}

// Start starts a created container and returns its process's PID; Wait
// returns its exit. Errors wrap container.ErrNotFound for a container that
// does not exist and container.ErrUnavailable when containerd could not be
// reached.
func (r *Runtime) Start(ctx context.Context, id string) (int, error) {
	ch, pid, err := r.startWatch(ctx, id)
	if err != nil {
		return 0, r.opErr(ctx, err)
	}
	r.mu.Lock()
	r.exits[id] = ch
	r.mu.Unlock()
	return pid, nil
}

// Wait blocks until the process of a container this Runtime started exits,
// or, after an agent restart, re-attaches to it (Attach) and waits. It
// returns container.ErrNotFound (wrapped) for a container that does not
// exist or never started.
func (r *Runtime) Wait(ctx context.Context, id string) (container.Exit, error) {
	r.mu.Lock()
	ch, ok := r.exits[id]
	delete(r.exits, id)
	r.mu.Unlock()
	if !ok {
		var err error
		ch, err = r.Attach(ctx, id)
		if err != nil {
			return container.Exit{}, notFoundErr(err)
		}
	}
	select {
	case st, ok := <-ch:
		if !ok {
			return container.Exit{}, errors.New("runtime closed before the container exited")
		}
		return container.Exit{Code: int(st.ExitCode), At: st.ExitedAt, OOMKill: st.OOMKilled}, nil
	case <-ctx.Done():
		return container.Exit{}, ctx.Err()
	}
}

// bundleBusyAttempts and bundleBusyWait bound how long Start waits for an
// earlier NewTask of the same container that containerd is still serving:
// attempt n waits n*bundleBusyWait, about 11 s in all.
const (
	bundleBusyAttempts = 7
	bundleBusyWait     = 500 * time.Millisecond
)

// bundleBusy tells containerd's answer to a NewTask whose bundle directory
// exists: another NewTask of the container is under way (containerd
// removes a bundle whose creation failed, and a restarted containerd those
// of shims that are gone). containerd sends it as an untyped error
// ("failed to start shim: mkdir …: file exists"), so its text is all there
// is to go by.
func bundleBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to start shim") && strings.Contains(msg, "file exists")
}

// startWatch starts a created container and returns its PID and a channel
// that delivers its exit status once and is closed; it is closed without a
// value if the Runtime is closed first (the container keeps running; Attach
// it again).
func (r *Runtime) startWatch(ctx context.Context, id string) (<-chan ExitStatus, int, error) {
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, 0, notFound(id, err)
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", id, err)
	}
	if err := r.ensureTaskCgroup(labels); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", id, err)
	}
	if labels[labelExit] != "" {
		// A restarted container: forget the previous run's exit.
		if _, err := c.SetLabels(ctx, map[string]string{labelExit: ""}); err != nil {
			return nil, 0, fmt.Errorf("start %s: clear exit label: %w", id, err)
		}
	}
	var (
		task     containerd.Task
		captured bool
	)
	for attempt := 1; ; attempt++ {
		// A task left by an earlier Start (an agent killed, or containerd gone,
		// before it returned) is taken up: Start is idempotent.
		if old, err := c.Task(ctx, nil); err == nil {
			st, err := old.Status(ctx)
			if err != nil {
				return nil, 0, fmt.Errorf("start %s: status of existing task: %w", id, err)
			}
			switch st.Status {
			case containerd.Running, containerd.Paused, containerd.Pausing:
				// Started by the earlier attempt: wait for it like for a
				// task this call started.
				ch, err := r.Attach(ctx, id)
				return ch, int(old.Pid()), err
			case containerd.Stopped:
				// Ended, but not deleted by an agent that died first.
				if _, err := old.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
					return nil, 0, fmt.Errorf("start %s: delete stopped task: %w", id, err)
				}
			default:
				// Created but never started: its process has not run a
				// single instruction of the container's. Begin again.
				if _, err := old.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
					return nil, 0, fmt.Errorf("start %s: delete task %s by an interrupted start: %w", id, st.Status, err)
				}
			}
		}
		// Output of earlier tasks is complete before this one writes.
		r.finishCaptures(ctx, id)
		var taskIO cio.Creator
		taskIO, captured, err = r.taskIO(id, labels)
		if err != nil {
			return nil, 0, fmt.Errorf("start %s: log capture: %w", id, err)
		}
		task, err = c.NewTask(ctx, taskIO)
		if err == nil {
			break
		}
		if captured {
			r.dropCaptures(ctx, id)
		}
		if !bundleBusy(err) || attempt == bundleBusyAttempts {
			return nil, 0, fmt.Errorf("start %s: create task: %w", id, err)
		}
		// An earlier Start's NewTask (its agent killed mid-call) is still
		// being served: containerd is making the shim in the bundle
		// directory that this call found. Wait for it, then take up the
		// task it made, as above.
		log.G(ctx).WithError(err).WithField("container", id).Info("an earlier start of the container is still under way in containerd; waiting for it")
		select {
		case <-time.After(time.Duration(attempt) * bundleBusyWait):
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("start %s: wait for an earlier start still under way: %w", id, ctx.Err())
		}
	}
	r.step(ctx, "start:created")
	if captured {
		// The task exists: the capture may now take a FIFO without a
		// writer for the end of its stream. Failing here is not fatal:
		// the output waits in the FIFOs, and the daemon (started again by
		// r.captures) finds the capture on disk.
		if err := r.captures.Arm(ctx, id); err != nil {
			log.G(ctx).WithError(err).WithField("container", id).Warn("log daemon does not answer")
		}
	}
	// Wait before Start, so a process that exits at once is not missed. The
	// wait lives as long as the Runtime, not the caller's ctx.
	exitCh, err := task.Wait(r.ctx)
	if err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return nil, 0, fmt.Errorf("start %s: wait task: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		if _, derr := task.Delete(r.ctx, containerd.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("delete failed task: %w", derr))
		}
		return nil, 0, fmt.Errorf("start %s: %w", id, err)
	}
	r.step(ctx, "start:started")
	out, err := r.monitor(id, exitCh)
	if err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", id, err)
	}
	return out, int(task.Pid()), nil
}

// monitor owns one goroutine per running container that turns the task's
// exit into an ExitStatus, records it and deletes the stopped task.
func (r *Runtime) monitor(id string, exitCh <-chan containerd.ExitStatus) (<-chan ExitStatus, error) {
	done, err := r.track()
	if err != nil {
		return nil, err
	}
	out := make(chan ExitStatus, 1)
	go func() {
		defer done()
		defer close(out)
		for {
			select {
			case <-r.ctx.Done():
				return
			case st := <-exitCh:
				if err := st.Error(); err != nil {
					// Not an exit: containerd went away. Re-read the task.
					log.G(r.ctx).WithError(err).WithField("container", id).Warn("lost task wait, re-attaching")
					next, done, ok := r.rewait(id)
					if !ok {
						return
					}
					if done != nil {
						out <- *done
						return
					}
					exitCh = next
					continue
				}
				code, at, _ := st.Result()
				out <- r.finishExit(id, code, at)
				return
			}
		}
	}()
	return out, nil
}

// rewait re-opens a task after a broken wait, retrying until containerd
// answers or the Runtime closes. It returns a new wait channel, or the exit
// when the task already stopped; ok is false when the Runtime closed.
func (r *Runtime) rewait(id string) (<-chan containerd.ExitStatus, *ExitStatus, bool) {
	delay := 100 * time.Millisecond
	for {
		select {
		case <-r.ctx.Done():
			return nil, nil, false
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
		ch, done, err := r.waitOrExit(r.ctx, id)
		if err == nil {
			return ch, done, true
		}
		if errors.Is(err, ErrContainerNotFound) || errors.Is(err, ErrNoTask) {
			// Removed behind our back: report what is known.
			return nil, &ExitStatus{ExitCode: 255, ExitedAt: time.Now()}, true
		}
		log.G(r.ctx).WithError(err).WithField("container", id).Debug("re-attach failed, retrying")
	}
}

// waitOrExit loads id's task: a running task gets a new wait channel, a
// stopped one is finished (exit recorded, task deleted) and its status
// returned.
func (r *Runtime) waitOrExit(ctx context.Context, id string) (<-chan containerd.ExitStatus, *ExitStatus, error) {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, nil, notFound(id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			labels, lerr := c.Labels(ctx)
			if lerr == nil {
				if st, ok := parseExitLabel(labels[labelExit]); ok {
					return nil, &st, nil
				}
			}
			return nil, nil, fmt.Errorf("container %s: %w", id, ErrNoTask)
		}
		return nil, nil, fmt.Errorf("container %s: load task: %w", id, err)
	}
	ch, err := task.Wait(r.ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: wait task: %w", id, err)
	}
	status, err := task.Status(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: task status: %w", id, err)
	}
	if status.Status == containerd.Stopped {
		st := r.finishExit(id, status.ExitStatus, status.ExitTime)
		return nil, &st, nil
	}
	return ch, nil, nil
}

// finishExit reads the OOM state while the cgroup still exists, records the
// exit on the container, waits for the log daemon to write the rest of the
// output (so the log is complete once the exit is delivered) and deletes
// the task (shims leak otherwise).
func (r *Runtime) finishExit(id string, code uint32, at time.Time) ExitStatus {
	ctx := r.ctx
	st := ExitStatus{ExitCode: code, ExitedAt: at}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		st.OOMKilled = r.takeOOM(id)
		return st
	}
	// takeOOM runs first, unconditionally: behind || it was skipped when the
	// cgroup counter already said OOM, so the entry stayed in r.ooms for
	// ever and marked a later container with the same ID as OOM-killed.
	sawEvent := r.takeOOM(id)
	st.OOMKilled = r.cgroupOOMKilled(ctx, c) || sawEvent
	if _, err := c.SetLabels(ctx, map[string]string{labelExit: st.label()}); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).WithField("container", id).Warn("could not record exit status")
	}
	r.finishCaptures(ctx, id)
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("container", id).Warn("could not delete stopped task")
		}
	}
	return st
}

// cgroupOOMKilled reads the container cgroup's oom_kill counter (v1
// memory.oom_control, v2 memory.events).
func (r *Runtime) cgroupOOMKilled(ctx context.Context, c containerd.Container) bool {
	s, err := c.Spec(ctx)
	if err != nil || s.Linux == nil || s.Linux.CgroupsPath == "" {
		return false
	}
	var file string
	if cgroups.Mode() == cgroups.Unified {
		file = filepath.Join("/sys/fs/cgroup", s.Linux.CgroupsPath, "memory.events")
	} else {
		file = filepath.Join("/sys/fs/cgroup/memory", s.Linux.CgroupsPath, "memory.oom_control")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n > 0
		}
	}
	return false
}

// Attach re-attaches to a container after an agent restart: a running one
// gets a new exit channel; one that exited meanwhile delivers its recorded
// exit at once. Output never stopped being captured (by the log daemon, or
// by the shim's own logger for containers from before it); Attach takes up
// a running container's captures again, so that a daemon that dies from now
// on is started again without losing what waits in the FIFOs.
func (r *Runtime) Attach(ctx context.Context, id string) (<-chan ExitStatus, error) {
	ctx = r.withNS(ctx)
	ch, done, err := r.waitOrExit(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", id, err)
	}
	if done == nil {
		if err := r.captures.Arm(ctx, id); err != nil {
			log.G(ctx).WithError(err).WithField("container", id).Warn("log daemon does not answer")
		}
	}
	if done != nil {
		out := make(chan ExitStatus, 1)
		out <- *done
		close(out)
		return out, nil
	}
	out, err := r.monitor(id, ch)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", id, err)
	}
	return out, nil
}

// Stop sends the container's stop signal, waits up to timeout for it to
// exit, then kills it with SIGKILL and waits for the exit. A container that
// is not running (or does not exist) is already stopped. The error wraps
// container.ErrUnavailable when containerd could not be reached.
func (r *Runtime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return r.opErr(ctx, r.stop(ctx, id, timeout))
}

func (r *Runtime) stop(ctx context.Context, id string, timeout time.Duration) error {
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop %s: load task: %w", id, err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop %s: wait task: %w", id, err)
	}
	status, err := task.Status(ctx)
	if err == nil && status.Status == containerd.Stopped {
		return nil
	}
	sig := syscall.SIGTERM
	if labels, err := c.Labels(ctx); err == nil && labels[labelStopSignal] != "" {
		if s, err := signal.ParseSignal(labels[labelStopSignal]); err == nil {
			sig = s
		}
	}
	if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: send %s: %w", id, sig, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-exitCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", id, ctx.Err())
	case <-timer.C:
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: kill: %w", id, err)
	}
	select {
	case <-exitCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: wait after SIGKILL: %w", id, ctx.Err())
	}
}

// Remove deletes the container's task (killing it if needed), the container,
// its snapshot and its per-container files. NotFound at any step counts as
// done, so Remove is idempotent.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	r.mu.Lock()
	delete(r.exits, id)
	r.mu.Unlock()
	return r.opErr(ctx, r.remove(ctx, id))
}

func (r *Runtime) remove(ctx context.Context, id string) error {
	ctx = r.withNS(ctx)
	defer os.RemoveAll(r.containerDir(id))
	defer r.dropCaptures(ctx, id) // after the task is gone
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return r.removeSnapshot(ctx, id)
		}
		return fmt.Errorf("remove %s: %w", id, err)
	}
	cgroupsPath := containerCgroupsPath(ctx, c)
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove %s: delete task: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: load task: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: delete container: %w", id, err)
	}
	r.removeEmptyTaskCgroup(cgroupsPath)
	return nil
}

// removeSnapshot cleans a snapshot left by a create that died half way.
func (r *Runtime) removeSnapshot(ctx context.Context, id string) error {
	err := r.client.SnapshotService(r.opts.Snapshotter).Remove(ctx, id)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: snapshot: %w", id, err)
	}
	return nil
}
