package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

// reconcile moves the task one round toward its desired status. It starts
// at most one operation per container and never blocks: operations run in
// the background and report back through the select loop.
func (r *taskRunner) reconcile() {
	if r.finished {
		return
	}
	r.next = time.Time{}
	defer r.armTimer()
	st := r.st
	if st.KnownStatus == TaskStopped {
		r.cleanupWhenDue()
		return
	}
	if st.Def.Invalid != "" {
		r.stopTask(st.Def.Invalid)
	}
	if st.DesiredStatus == TaskStopped {
		r.driveStop()
		return
	}
	if !st.Admitted {
		reason := r.e.checkLogConfig(&st.Def)
		if reason == "" {
			reason = r.e.checkSecurityOptions(&st.Def)
		}
		if reason != "" {
			r.stopTask(prefixCreate + reason)
			r.mustSave()
			r.driveStop()
			return
		}
		ok, fatal := r.e.admit(st.Def.ARN, &st.Def)
		if fatal != "" {
			r.stopTask(prefixResourceInit + fatal)
			r.mustSave()
			r.driveStop()
			return
		}
		if !ok {
			return // PENDING until another task frees resources
		}
		st.Admitted = true
		if !r.mustSave() {
			return
		}
	}
	if !st.NetworkReady && !r.netBusy {
		r.setupNetwork()
	}
	for _, c := range st.Containers {
		if c.DesiredStatus != ContainerRunning || r.container(c.Name).busy || c.KnownStatus >= ContainerRunning {
			continue
		}
		r.advance(c)
		if st.DesiredStatus == TaskStopped {
			r.driveStop()
			return
		}
	}
	if r.allStopped() {
		// Nothing is left to run (every container was non-essential).
		r.stopTask(ReasonEssentialExited)
		r.mustSave()
		r.driveStop()
		return
	}
	if st.KnownStatus < TaskRunning && r.allStarted() {
		st.KnownStatus = TaskRunning
		r.mustSave(r.taskChange())
	}
}

// allStarted reports whether every container reached RUNNING (or ended
// after that, or failed while non-essential).
func (r *taskRunner) allStarted() bool {
	for _, c := range r.st.Containers {
		if c.KnownStatus < ContainerRunning {
			return false
		}
	}
	return true
}

func (r *taskRunner) allStopped() bool {
	for _, c := range r.st.Containers {
		if c.KnownStatus != ContainerStopped {
			return false
		}
	}
	return true
}

// advance starts the next step of one container.
func (r *taskRunner) advance(c *ContainerState) {
	st := r.st
	d := r.def(c)
	rt := r.e.opts.Runtime
	id := ContainerID(st.Def.ARN, c.Name)
	if cr := r.container(c.Name); !cr.retryAt.IsZero() {
		if r.now().Before(cr.retryAt) {
			r.wakeAt(cr.retryAt)
			return
		}
		cr.retryAt = time.Time{}
	}
	switch c.KnownStatus {
	case ContainerNone:
		if st.PullStartedAt.IsZero() {
			st.PullStartedAt = r.now()
		}
		c.Step = stepPulling
		if !r.mustSave() {
			return
		}
		r.e.count(func(m *Metrics) { m.Pulls++ })
		image, arn := d.Image, st.Def.ARN
		r.goOp(c.Name, "pull", true, func(ctx context.Context) event {
			img, err := rt.Pull(container.WithPullFor(ctx, arn), image)
			return event{kind: evPulled, image: img, err: err}
		})
	case ContainerPulled, ContainerCreated:
		if !st.NetworkReady {
			return
		}
		ok, reason := r.depsReady(c)
		if reason != "" {
			r.fail(c, prefixDependency+reason)
			return
		}
		if !ok {
			return
		}
		if c.KnownStatus == ContainerPulled {
			spec := r.buildSpec(c, d)
			c.Step = stepCreating
			c.LogPath = spec.LogPath
			if !r.mustSave() {
				return
			}
			if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
				r.fail(c, prefixCreate+fmt.Sprintf("create log directory: %v", err))
				return
			}
			timeout := r.e.opts.CreateTimeout
			refs, src, arn, logCfg := d.Secrets, r.e.opts.Secrets, st.Def.ARN, d.Spec.Log
			r.goOp(c.Name, "create", false, func(ctx context.Context) event {
				ctx, cancel := withTimeout(ctx, timeout)
				defer cancel()
				env, logOpts, err := fetchSecrets(ctx, src, arn, refs)
				if err != nil {
					return event{kind: evCreated, err: err, secrets: true}
				}
				if _, err := withLogSecrets(logCfg, logOpts); err != nil {
					return event{kind: evCreated, err: err}
				}
				// The values go to the runtime only, never into the
				// task's record.
				spec.Env = append(slices.Clone(spec.Env), env...)
				return event{kind: evCreated, err: rt.Create(ctx, spec), logSecrets: logOpts}
			})
			return
		}
		c.Step = stepStarting
		if !r.mustSave() {
			return
		}
		timeout := r.e.opts.StartTimeout
		r.goOp(c.Name, "start", false, func(ctx context.Context) event {
			sctx, cancel := withTimeout(ctx, timeout)
			defer cancel()
			pid, err := rt.Start(sctx, id)
			if err != nil {
				// A start that failed or timed out may still have made a
				// process; the container is reported STOPPED, so make sure.
				kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer kcancel()
				_ = rt.Stop(kctx, id, 0)
			}
			return event{kind: evStarted, pid: pid, err: err}
		})
	}
}

// depsReady checks c's dependsOn. It returns ok when every condition holds,
// and a reason when one can no longer hold (or timed out).
func (r *taskRunner) depsReady(c *ContainerState) (ok bool, reason string) {
	d := r.def(c)
	if len(d.DependsOn) == 0 {
		return true, ""
	}
	cr := r.container(c.Name)
	if cr.waitSince.IsZero() {
		cr.waitSince = r.now()
	}
	since := cr.waitSince
	ok = true
	for _, dep := range d.DependsOn {
		dc := r.st.container(dep.Container)
		dd := r.st.def(dep.Container)
		if dc == nil || dd == nil {
			return false, fmt.Sprintf("container %s depends on unknown container %s", c.Name, dep.Container)
		}
		met, impossible := conditionMet(dep.Condition, dc)
		if impossible {
			return false, fmt.Sprintf("dependency %s of container %s can no longer reach %s", dep.Container, c.Name, dep.Condition)
		}
		if met {
			continue
		}
		ok = false
		if dd.StartTimeout > 0 {
			deadline := since.Add(dd.StartTimeout)
			if !r.now().Before(deadline) {
				return false, fmt.Sprintf("dependency %s of container %s did not reach %s within %s", dep.Container, c.Name, dep.Condition, dd.StartTimeout)
			}
			r.wakeAt(deadline)
		}
	}
	return ok, ""
}

func conditionMet(cond Condition, dc *ContainerState) (met, impossible bool) {
	ran := !dc.StartedAt.IsZero()
	stopped := dc.KnownStatus == ContainerStopped
	switch cond {
	case CondStart:
		if dc.KnownStatus >= ContainerRunning && (ran || !stopped) {
			return true, false
		}
		return false, stopped
	case CondComplete:
		return stopped && ran, stopped && !ran
	case CondSuccess:
		if stopped {
			ok := ran && dc.ExitCode != nil && *dc.ExitCode == 0
			return ok, !ok
		}
		return false, false
	case CondHealthy:
		if dc.Health == container.HealthHealthy && !stopped {
			return true, false
		}
		return false, stopped || dc.Health == container.HealthUnhealthy
	}
	return false, true
}

// driveStop stops every container, dependents before what they depend on,
// then tears the network down and marks the task STOPPED.
func (r *taskRunner) driveStop() {
	st := r.st
	allStopped := true
	for _, c := range st.Containers {
		if c.KnownStatus == ContainerStopped {
			continue
		}
		allStopped = false
		if cr := r.container(c.Name); cr.busy {
			if cr.cancelOp != nil {
				cr.cancelOp() // a pull need not finish for a task that is stopping
			}
			continue
		}
		switch c.KnownStatus {
		case ContainerNone, ContainerPulled, ContainerCreated:
			if c.KnownStatus == ContainerCreated && c.Retries > 0 {
				// A start whose answer was lost may have made a process:
				// the container is STOPPED once a stop says it is gone.
				r.issueStop(c)
				continue
			}
			c.KnownStatus = ContainerStopped
			c.DesiredStatus = ContainerStopped
			c.Step = stepNone
			r.mustSave(r.containerChange(c))
		case ContainerRunning:
			c.DesiredStatus = ContainerStopped
			if r.container(c.Name).stopIssued || r.dependentsRunning(c) {
				continue
			}
			r.issueStop(c)
		}
	}
	allStopped = true
	for _, c := range st.Containers {
		if c.KnownStatus != ContainerStopped {
			allStopped = false
		}
	}
	if !allStopped || r.anyBusy() || r.netBusy {
		return
	}
	if st.NetworkReady || st.NetworkStep != stepNone {
		if at := r.netRetryAt; !at.IsZero() && r.now().Before(at) {
			r.wakeAt(at)
			return
		}
		r.netRetryAt = time.Time{}
		st.NetworkStep = stepStopping
		if !r.mustSave() {
			return
		}
		req := r.networkRequest()
		nw := r.e.opts.Network
		r.goOp("", "network-teardown", false, func(ctx context.Context) event {
			return event{kind: evNetDown, err: nw.TeardownNetwork(ctx, req)}
		})
		return
	}
	if st.Admitted {
		st.Admitted = false
		defer r.e.release(st.Def.ARN)
	}
	st.KnownStatus = TaskStopped
	st.StoppedAt = r.now()
	// Execution stopped when the last container did, not when the network
	// was gone.
	st.ExecutionStoppedAt = time.Time{}
	for _, c := range st.Containers {
		if c.FinishedAt.After(st.ExecutionStoppedAt) {
			st.ExecutionStoppedAt = c.FinishedAt
		}
	}
	if st.ExecutionStoppedAt.IsZero() {
		st.ExecutionStoppedAt = st.StoppedAt
	}
	if st.StoppedReason == "" {
		st.StoppedReason = ReasonEssentialExited
	}
	r.mustSave(r.taskChange())
	r.cleanupWhenDue()
}

// issueStop starts stopping one container, once the delay after a failed
// attempt has passed.
func (r *taskRunner) issueStop(c *ContainerState) {
	cr := r.container(c.Name)
	if at := cr.retryAt; !at.IsZero() && r.now().Before(at) {
		r.wakeAt(at)
		return
	}
	cr.retryAt = time.Time{}
	c.Step = stepStopping
	if !r.mustSave() {
		return
	}
	timeout := r.def(c).StopTimeout
	if timeout <= 0 {
		timeout = r.e.opts.StopTimeout
	}
	rt := r.e.opts.Runtime
	id := ContainerID(r.st.Def.ARN, c.Name)
	r.goOp(c.Name, "stop", false, func(ctx context.Context) event {
		return event{kind: evStopDone, err: rt.Stop(ctx, id, timeout)}
	})
}

// dependentsRunning reports whether a container that depends on c is still
// up; c is stopped only after those, the reverse of the start order.
func (r *taskRunner) dependentsRunning(c *ContainerState) bool {
	for _, d := range r.st.Def.Containers {
		for _, dep := range d.DependsOn {
			if dep.Container != c.Name {
				continue
			}
			if dc := r.st.container(d.Name); dc != nil && dc.KnownStatus != ContainerStopped {
				return true
			}
		}
	}
	return false
}

func (r *taskRunner) networkRequest() container.NetworkRequest {
	req := container.NetworkRequest{TaskID: TaskID(r.st.Def.ARN), Mode: r.st.Def.NetworkMode, Handle: r.st.NetHandle}
	if req.Mode == "" {
		req.Mode = "bridge"
	}
	// Host ports exist in bridge mode (mapped) and host mode (the
	// container's own); awsvpc and none tasks have none.
	if req.Mode == "bridge" || req.Mode == "host" {
		for _, d := range r.st.Def.Containers {
			req.Ports = append(req.Ports, d.Ports...)
		}
	}
	return req
}

// setupNetwork prepares volumes and starts the network setup. A setup that
// a crash interrupted is torn down first, so Setup always starts clean.
func (r *taskRunner) setupNetwork() {
	st := r.st
	if err := r.prepareVolumes(); err != nil {
		r.stopTask(prefixResourceInit + err.Error())
		r.mustSave()
		return
	}
	halfDone := st.NetworkStep != stepNone
	st.NetworkStep = stepCreating
	if !r.mustSave() {
		return
	}
	req := r.networkRequest()
	nw := r.e.opts.Network
	r.goOp("", "network-setup", false, func(ctx context.Context) event {
		if halfDone {
			if err := nw.TeardownNetwork(ctx, req); err != nil {
				return event{kind: evNetUp, err: fmt.Errorf("roll back interrupted network setup: %w", err)}
			}
		}
		res, err := nw.SetupNetwork(ctx, req)
		return event{kind: evNetUp, net: res, err: err}
	})
}

// prepareVolumes resolves every task volume to a host path, creating the
// agent-managed ones.
func (r *taskRunner) prepareVolumes() error {
	st := r.st
	if st.VolumePaths == nil {
		st.VolumePaths = map[string]string{}
	}
	for _, v := range st.Def.Volumes {
		var path string
		switch v.Kind {
		case VolumeHost:
			if v.SourcePath != "" {
				st.VolumePaths[v.Name] = v.SourcePath
				continue
			}
			path = r.taskVolumeDir(v.Name)
		case VolumeTaskScoped:
			path = r.taskVolumeDir(v.Name)
		case VolumeSharedScoped:
			path = filepath.Join(r.e.opts.DataDir, "volumes", "shared", sanitizeID(v.Name))
			if _, err := os.Stat(path); err != nil {
				if !errors.Is(err, os.ErrNotExist) || !v.Autoprovision {
					return fmt.Errorf("shared volume %s: %w", v.Name, err)
				}
			}
		default:
			return fmt.Errorf("volume %s: unsupported type %q", v.Name, v.Kind)
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("create volume %s: %w", v.Name, err)
		}
		st.VolumePaths[v.Name] = path
	}
	return nil
}

func (r *taskRunner) taskVolumeDir(name string) string {
	return filepath.Join(r.e.opts.DataDir, "volumes", sanitizeID(TaskID(r.st.Def.ARN)), sanitizeID(name))
}

// buildSpec fills the per-run fields of a container's spec.
func (r *taskRunner) buildSpec(c *ContainerState, d *ContainerDef) container.Spec {
	st := r.st
	spec := d.Spec
	spec.ID = ContainerID(st.Def.ARN, c.Name)
	spec.Image = d.Image
	spec.Labels = map[string]string{}
	for k, v := range d.Spec.Labels {
		spec.Labels[k] = v
	}
	spec.Labels[LabelTaskARN] = st.Def.ARN
	spec.Labels[LabelContainerName] = c.Name
	spec.Labels[LabelTaskDefFamily] = st.Def.Family
	spec.Labels[LabelTaskDefVersion] = st.Def.Version
	spec.Labels[LabelCluster] = st.Def.Cluster
	switch st.Def.NetworkMode {
	case "host":
		spec.HostNetwork = true
	default:
		spec.NetNSPath = st.NetNSPath
	}
	spec.Mounts = append([]container.Mount(nil), d.Spec.Mounts...)
	for _, m := range d.Mounts {
		spec.Mounts = append(spec.Mounts, container.Mount{Source: st.VolumePaths[m.Volume], Destination: m.ContainerPath, ReadOnly: m.ReadOnly})
	}
	spec.LogPath = r.e.opts.LogPath(spec.ID)
	if tc := r.e.opts.TaskCgroups.cgroupFor(&st.Def); tc != nil {
		spec.TaskCgroup = tc
		if r.e.opts.TaskCgroups.PropagateMemory && spec.MemoryLimit == 0 {
			spec.MemoryLimit = tc.MemoryLimit
		}
	}
	return spec
}

// wireBindings is the network's port bindings as the task record and its
// state changes carry them.
func wireBindings(in []container.PortBinding) []api.NetworkBinding {
	var out []api.NetworkBinding
	for _, b := range in {
		out = append(out, api.NetworkBinding{ContainerPort: b.ContainerPort, HostPort: b.HostPort, Protocol: b.Protocol, BindIP: b.BindIP})
	}
	return out
}

// bindingsFor returns the host bindings of one container's port mappings.
func bindingsFor(st *TaskState, d *ContainerDef) []api.NetworkBinding {
	var out []api.NetworkBinding
	for _, p := range d.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		for _, b := range st.Bindings {
			if b.ContainerPort == p.ContainerPort && b.Protocol == proto {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// cleanupWhenDue removes a stopped task's leftovers after CleanupWait.
func (r *taskRunner) cleanupWhenDue() {
	if r.cleaning || r.finished {
		return
	}
	due := r.st.StoppedAt.Add(r.e.opts.CleanupWait)
	if at := r.cleanupRetryAt; at.After(due) {
		due = at // a failed clean-up waits before it tries again
	}
	if r.now().Before(due) {
		r.wakeAt(due)
		return
	}
	r.cleanupRetryAt = time.Time{}
	for _, cr := range r.containers {
		if cr.life != nil {
			cr.life()
		}
	}
	r.cleaning = true
	st := r.st
	var ids, logs, vols []string
	for _, c := range st.Containers {
		ids = append(ids, ContainerID(st.Def.ARN, c.Name))
		if c.LogPath != "" {
			logs = append(logs, c.LogPath)
		}
	}
	for _, v := range st.Def.Volumes {
		if v.Kind == VolumeTaskScoped || (v.Kind == VolumeHost && v.SourcePath == "") {
			vols = append(vols, r.taskVolumeDir(v.Name))
		}
	}
	taskDir := filepath.Join(r.e.opts.DataDir, "volumes", sanitizeID(TaskID(st.Def.ARN)))
	arn := st.Def.ARN
	e := r.e
	var drains []chan struct{}
	for _, cr := range r.containers {
		if cr.draining != nil {
			drains = append(drains, cr.draining)
		}
	}
	r.goOp("", "cleanup", false, func(ctx context.Context) event {
		var errs []error
		// A drain still running (bounded by LogDrainTimeout) would write
		// its position again after Remove deleted it.
		for _, d := range drains {
			select {
			case <-d:
			case <-ctx.Done():
			}
		}
		if e.opts.LogShipper != nil {
			// Before the logs go: a shipper still tailing them would count
			// the removed lines as dropped.
			for _, id := range ids {
				if err := e.opts.LogShipper.Remove(id); err != nil {
					errs = append(errs, fmt.Errorf("stop shipping logs of %s: %w", id, err))
				}
			}
		}
		for _, id := range ids {
			if err := e.opts.Runtime.Remove(ctx, id); err != nil && !errors.Is(err, container.ErrNotFound) {
				errs = append(errs, fmt.Errorf("remove container %s: %w", id, err))
			}
		}
		// After the containers: the task cgroup holds theirs until then.
		if tcr, ok := e.opts.Runtime.(TaskCgroupRemover); ok {
			if err := tcr.RemoveTaskCgroup(ctx, taskCgroupName(arn)); err != nil {
				errs = append(errs, fmt.Errorf("remove task cgroup: %w", err))
			}
		}
		for _, v := range vols {
			if err := os.RemoveAll(v); err != nil {
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
			}
		}
		_ = os.Remove(taskDir) // only when empty
		if e.opts.Logs != nil {
			for _, p := range logs {
				if err := e.opts.Logs.RemoveLogs(ctx, p); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, fmt.Errorf("remove logs %s: %w", p, err))
				}
			}
		}
		if len(errs) > 0 {
			// The record is what makes the clean-up happen again, even
			// after a restart: it goes only once everything else went.
			return event{kind: evCleaned, err: errors.Join(errs...)}
		}
		if err := e.opts.Store.DeleteTask(arn); err != nil {
			return event{kind: evCleaned, err: fmt.Errorf("delete task record: %w", err)}
		}
		return event{kind: evCleaned}
	})
}

// withTimeout bounds ctx by d when d is positive.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
