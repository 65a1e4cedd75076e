package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

// recover loads every stored task, compares it with the containers the
// runtime has, records what happened while the agent was down, finishes or
// rolls back interrupted steps, and starts each task's goroutine again.
// Containers that carry our labels but belong to no stored task are removed.
func (e *Engine) recover(ctx context.Context) error {
	records, err := e.opts.Store.TaskRecords()
	if err != nil {
		return fmt.Errorf("load tasks: %w", err)
	}
	observed, err := e.opts.Runtime.List(ctx, LabelTaskARN)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	byID := make(map[string]container.Observed, len(observed))
	for _, o := range observed {
		byID[o.ID] = o
	}
	claimed := map[string]bool{}
	var runners []*taskRunner
	for _, b := range records {
		st, err := decodeTaskState(b)
		if err != nil {
			e.log.Error("skip unreadable task record", "err", err)
			continue
		}
		for _, c := range st.Containers {
			claimed[ContainerID(st.Def.ARN, c.Name)] = true
		}
		r := newTaskRunner(e, st)
		changes := r.reconcileObserved(byID)
		if err := r.save(ctx, changes...); err != nil {
			return fmt.Errorf("store recovered task %s: %w", st.Def.ARN, err)
		}
		runners = append(runners, r)
	}
	for _, o := range observed {
		if claimed[o.ID] {
			continue
		}
		// A container of a task we no longer know: its record was cleaned
		// up (or never written) and nothing will ever stop it otherwise.
		e.log.Info("remove container of unknown task", "id", o.ID, "task", o.Labels[LabelTaskARN])
		if o.Running {
			if err := e.opts.Runtime.Stop(ctx, o.ID, 0); err != nil && !errors.Is(err, container.ErrNotFound) {
				e.log.Warn("stop leftover container", "id", o.ID, "err", err)
			}
		}
		if err := e.opts.Runtime.Remove(ctx, o.ID); err != nil && !errors.Is(err, container.ErrNotFound) {
			e.log.Warn("remove leftover container", "id", o.ID, "err", err)
		}
	}
	if e.opts.AfterRecover != nil {
		var live [][]byte
		for _, r := range runners {
			if len(r.st.NetHandle) > 0 {
				live = append(live, r.st.NetHandle)
			}
		}
		if err := e.opts.AfterRecover(ctx, live); err != nil {
			return fmt.Errorf("after recovery: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range runners {
		st := r.st
		if st.Admitted && st.KnownStatus != TaskStopped {
			// Re-take what the task held before the restart; it was
			// admitted then, so it is admitted now whatever else arrived.
			e.res.admit(st.Def.ARN, &st.Def)
		}
		e.tasks[st.Def.ARN] = r
		e.startRunnerLocked(r)
	}
	return nil
}

// reconcileObserved brings a recovered record in line with what the runtime
// reports and returns the state changes that happened while the agent was
// down. Containers found running are re-attached, never restarted.
func (r *taskRunner) reconcileObserved(byID map[string]container.Observed) []api.StateChange {
	st := r.st
	var changes []api.StateChange
	for _, c := range st.Containers {
		id := ContainerID(st.Def.ARN, c.Name)
		o, exists := byID[id]
		switch {
		case c.KnownStatus == ContainerStopped:
			// Nothing to do: the container ended before the restart.
		case exists && o.Running:
			if c.KnownStatus < ContainerRunning {
				// Started but the agent died before writing it down.
				c.KnownStatus = ContainerRunning
				c.StartedAt = r.now()
				c.Bindings = bindingsFor(st, r.def(c))
				changes = append(changes, r.containerChange(c))
			}
			c.RuntimeID = id
			c.PID = o.PID
			if c.Step != stepStopping {
				c.Step = stepNone
			}
			r.attach = append(r.attach, c.Name)
		case exists && o.Exited:
			// The process ended while the agent was down.
			if c.KnownStatus < ContainerRunning && c.StartedAt.IsZero() {
				c.StartedAt = o.Exit.At
			}
			code := o.Exit.Code
			c.ExitCode = &code
			c.KnownStatus = ContainerStopped
			c.DesiredStatus = ContainerStopped
			c.FinishedAt = o.Exit.At
			c.Step = stepNone
			c.RuntimeID = id
			if o.Exit.OOMKill && c.Reason == "" {
				c.Reason = ReasonOOM
			}
			if r.def(c).Essential {
				r.stopTask(ReasonEssentialExited)
			}
			changes = append(changes, r.containerChange(c))
		case exists:
			// Created, never started (or the start was interrupted before
			// the process ran): the container itself is fine.
			if c.KnownStatus < ContainerCreated {
				c.KnownStatus = ContainerCreated
			}
			c.RuntimeID = id
			c.Step = stepNone
		default:
			switch {
			case c.KnownStatus == ContainerRunning:
				// The container vanished with the agent down; its exit
				// code is unknown.
				c.KnownStatus = ContainerStopped
				c.DesiredStatus = ContainerStopped
				c.FinishedAt = r.now()
				c.Reason = "container vanished while the agent was down"
				if r.def(c).Essential {
					r.stopTask(ReasonEssentialExited)
				}
				changes = append(changes, r.containerChange(c))
			case c.KnownStatus == ContainerCreated || c.Step == stepCreating:
				// A create that never finished, or was undone: make it again.
				c.KnownStatus = ContainerPulled
				c.RuntimeID = ""
			}
			c.Step = stepNone
		}
		if c.Step == stepPulling {
			// An interrupted pull is simply pulled again; pulls are idempotent.
			c.Step = stepNone
		}
	}
	return changes
}
