package engine

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/pkg/logship"
)

// checkLogConfig returns why the task's log configuration cannot run on
// this agent (a driver not allowed, an unknown option or a bad value), or
// "". It runs once, before the task is admitted.
func (e *Engine) checkLogConfig(def *TaskDef) string {
	for _, c := range def.Containers {
		lc := c.Spec.Log
		if lc.Driver == "" {
			continue
		}
		var err error
		if lc.Driver != logship.DriverJSONFile && lc.Driver != logship.DriverNone && e.opts.LogDrivers != nil {
			err = logship.CheckAllowed(lc.Driver, e.opts.LogDrivers)
		}
		if err == nil {
			err = logship.ValidateOptions(lc.Driver, lc.Options)
		}
		if err != nil {
			return fmt.Sprintf("container %s: %v", c.Name, err)
		}
	}
	return ""
}

// ships reports whether the container's logs go to a LogShipper.
func (r *taskRunner) ships(c *ContainerState) bool {
	if r.e.opts.LogShipper == nil || c.LogPath == "" {
		return false
	}
	switch r.def(c).Spec.Log.Driver {
	case "", logship.DriverJSONFile, logship.DriverNone:
		return false
	}
	return true
}

// shipLog starts (or, after a restart, resumes) shipping a started
// container's log. A failure is logged, never fatal: the lines stay in
// the json-file and the container runs on. It reports false when shipping
// waits for the log driver's secretOptions to be fetched.
func (r *taskRunner) shipLog(c *ContainerState) bool {
	if !r.ships(c) {
		return true
	}
	st, d := r.st, r.def(c)
	lc := d.Spec.Log
	if refs := logSecretRefs(d); len(refs) > 0 {
		cr := r.container(c.Name)
		opts := cr.logSecrets
		if !cr.haveLogSecrets {
			r.fetchLogSecrets(c.Name, refs) // shipLog runs again with them
			return false
		}
		var err error
		if lc, err = withLogSecrets(lc, opts); err != nil {
			r.log.Warn("ship container logs", "container", c.Name, "driver", lc.Driver, "err", err)
			return true
		}
	}
	cl := ContainerLog{
		ID:      ContainerID(st.Def.ARN, c.Name),
		LogPath: c.LogPath,
		Log:     lc,
		Name:    c.Name,
		Image:   d.Image,
		TaskARN: st.Def.ARN,
		Family:  st.Def.Family,
		Cluster: st.Def.Cluster,
		Labels:  d.Spec.Labels,
		Env:     d.Spec.Env,
	}
	if err := r.e.opts.LogShipper.Start(r.ctx, cl); err != nil {
		r.log.Warn("ship container logs", "container", c.Name, "driver", cl.Log.Driver, "err", err)
	}
	return true
}

// drainLog ships what an exited container's log still holds, in the
// background and bounded by LogDrainTimeout, so that a dead destination
// never holds the task's stop.
func (r *taskRunner) drainLog(c *ContainerState) {
	if !r.ships(c) {
		return
	}
	ls, id, timeout := r.e.opts.LogShipper, ContainerID(r.st.Def.ARN, c.Name), r.e.opts.LogDrainTimeout
	name, ctx := c.Name, r.ctx
	done := make(chan struct{})
	r.container(name).draining = done
	r.ops.Add(1)
	go func() {
		defer r.ops.Done()
		defer close(done)
		dctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := ls.Drain(dctx, id); err != nil {
			r.log.Warn("drain container logs", "container", name, "err", err)
		}
	}()
}

// resumeLogs starts shipping again, after an agent restart, for every
// container that ran and whose log is still there, and drains those that
// have exited since.
func (r *taskRunner) resumeLogs() {
	for _, c := range r.st.Containers {
		if c.StartedAt.IsZero() || !r.ships(c) {
			continue
		}
		if r.shipLog(c) && c.KnownStatus == ContainerStopped {
			r.drainLog(c)
		}
	}
}
