package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

type eventKind int

const (
	evPulled eventKind = iota
	evCreated
	evStarted
	evStopDone
	evExited
	evHealth
	evNetUp
	evNetDown
	evCleaned
	evLogSecrets
)

// event is the result of something the task's goroutine started in the
// background, delivered back to it so that it stays the only writer.
type event struct {
	kind      eventKind
	container string
	err       error
	image     container.Image
	pid       int
	exit      container.Exit
	healthy   bool
	net       container.NetworkResult
	// secrets marks a create that failed fetching the container's secrets.
	secrets bool
	// logSecrets are the log driver's secretOptions values (evCreated,
	// evLogSecrets).
	logSecrets map[string]string
}

type desiredReq struct {
	status TaskStatus
	done   chan error
}

// maxTeardownAttempts bounds network teardown attempts; container stops and
// task clean-ups are retried until they succeed.
const maxTeardownAttempts = 3

// Retry delays of operations that failed or could not reach the runtime:
// doubled per attempt from firstRetryDelay up to maxRetryDelay.
const (
	firstRetryDelay = time.Second
	maxRetryDelay   = 30 * time.Second
)

// retryDelay is the wait before retry number attempt (1 is the first).
func retryDelay(attempt int) time.Duration {
	d := firstRetryDelay
	for i := 1; i < attempt && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// taskRunner is the goroutine that owns one task. Every input (desired
// status, operation results, exits, health results, timers) arrives on a
// channel read by one select in run, so the task has a single writer.
type taskRunner struct {
	e       *Engine
	st      *TaskState
	log     *slog.Logger
	desired chan desiredReq
	events  chan event
	wake    chan struct{}
	done    chan struct{}
	record  atomic.Pointer[[]byte] // last saved record, for snapshots

	// The fields below are owned by the run goroutine.
	ctx        context.Context
	ops        sync.WaitGroup
	containers map[string]*containerRun // container name → its in-memory state
	netBusy    bool
	netCancel  context.CancelFunc // cancels an in-flight network operation
	cleaning   bool
	finished   bool
	// teardownAttempts counts failed network teardowns; netRetryAt and
	// cleanupRetryAt hold when the next teardown or clean-up may run.
	teardownAttempts int
	netRetryAt       time.Time
	cleanupRetryAt   time.Time
	attach           []string // containers found running at recovery
	timer            *time.Timer
	next             time.Time
}

// containerRun is what the task's goroutine keeps in memory, never
// persisted, about one of its containers.
type containerRun struct {
	busy     bool               // an operation is in flight
	cancelOp context.CancelFunc // cancels an in-flight pull
	life     context.CancelFunc // ends the waiter and health check
	// waitSince is when the container started waiting on dependsOn.
	waitSince   time.Time
	healthFails int // consecutive failed health probes that count
	// stopIssued marks a container whose Stop returned; its exit follows.
	stopIssued bool
	// retryAt is when a failed operation may run again (zero: now).
	retryAt time.Time
	// draining is closed when the container's log drain ends; clean-up
	// waits for it before removing the shipper.
	draining chan struct{}
	// logSecrets holds the log driver's secretOptions values, in memory
	// only (see secrets.go); haveLogSecrets says they were fetched.
	logSecrets     map[string]string
	haveLogSecrets bool
}

// container returns the in-memory state of the named container, making it
// on first use.
func (r *taskRunner) container(name string) *containerRun {
	cr := r.containers[name]
	if cr == nil {
		cr = &containerRun{}
		r.containers[name] = cr
	}
	return cr
}

// anyBusy reports whether an operation of some container is in flight.
func (r *taskRunner) anyBusy() bool {
	for _, cr := range r.containers {
		if cr.busy {
			return true
		}
	}
	return false
}

func newTaskRunner(e *Engine, st *TaskState) *taskRunner {
	return &taskRunner{
		e:          e,
		st:         st,
		log:        e.log.With("task", st.Def.ARN),
		desired:    make(chan desiredReq),
		events:     make(chan event),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		containers: map[string]*containerRun{},
	}
}

func (r *taskRunner) now() time.Time { return r.e.opts.Now() }

// poke wakes the runner to look at its task again (resources were freed).
func (r *taskRunner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *taskRunner) snapshot() (TaskState, bool) {
	b := r.record.Load()
	if b == nil {
		return TaskState{}, false
	}
	st, err := decodeTaskState(*b)
	if err != nil {
		return TaskState{}, false
	}
	return *st, true
}

// setDesired hands a desired status to the runner and waits until it is
// stored (or found to change nothing).
func (r *taskRunner) setDesired(ctx context.Context, status TaskStatus) error {
	req := desiredReq{status: status, done: make(chan error, 1)}
	select {
	case r.desired <- req:
	case <-r.done:
		return nil // cleaned up: nothing left to change
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *taskRunner) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	r.ctx = ctx
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	defer func() {
		cancel()
		r.ops.Wait()
		r.timer.Stop()
		close(r.done)
	}()
	r.resumeLogs()
	for _, name := range r.attach {
		r.watch(name)
	}
	r.attach = nil
	r.reconcile()
	for !r.finished {
		select {
		case <-ctx.Done():
			return
		case req := <-r.desired:
			req.done <- r.handleDesired(req.status)
		case ev := <-r.events:
			r.handle(ev)
		case <-r.wake:
		case <-r.timer.C:
			r.next = time.Time{}
		}
		r.reconcile()
	}
}

func (r *taskRunner) handleDesired(status TaskStatus) error {
	if status <= r.st.DesiredStatus {
		return nil // desired status only moves forward; a redelivery changes nothing
	}
	r.st.DesiredStatus = status
	if status == TaskStopped && r.st.StoppedReason == "" {
		r.st.StoppedReason = ReasonStoppedByUser
	}
	return r.save(r.ctx)
}

// save writes the record and the changes to the outbox in one transaction.
func (r *taskRunner) save(ctx context.Context, changes ...api.StateChange) error {
	b, err := json.Marshal(r.st)
	if err != nil {
		return fmt.Errorf("encode task %s: %w", r.st.Def.ARN, err)
	}
	if err := r.e.opts.Store.SaveTask(r.st.Def.ARN, b, changes); err != nil {
		return fmt.Errorf("save task %s: %w", r.st.Def.ARN, err)
	}
	r.record.Store(&b)
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("task saved", "known", st(r.st), "changes", len(changes))
	}
	if len(changes) > 0 && r.e.opts.OnStateChange != nil {
		r.e.opts.OnStateChange()
	}
	return nil
}

// mustSave saves and logs a failure: the next transition rewrites the whole
// record, so a failed write is retried by the next save.
func (r *taskRunner) mustSave(changes ...api.StateChange) bool {
	if err := r.save(r.ctx, changes...); err != nil {
		if r.ctx.Err() == nil {
			r.log.Error("persist task state", "err", err)
		}
		return false
	}
	return true
}

func (r *taskRunner) taskChange() api.StateChange {
	st := r.st
	ch := api.StateChange{
		Kind:          api.ChangeTask,
		TaskARN:       st.Def.ARN,
		Cluster:       st.Def.Cluster,
		Status:        st.KnownStatus.Reported(),
		PullStartedAt: st.PullStartedAt,
		PullStoppedAt: st.PullStoppedAt,
		At:            r.now(),
	}
	if st.KnownStatus == TaskStopped {
		ch.Reason = st.StoppedReason
		ch.ExecutionStoppedAt = st.ExecutionStoppedAt
	}
	return ch
}

func (r *taskRunner) containerChange(c *ContainerState) api.StateChange {
	ch := api.StateChange{
		Kind:            api.ChangeContainer,
		TaskARN:         r.st.Def.ARN,
		Cluster:         r.st.Def.Cluster,
		ContainerName:   c.Name,
		Status:          c.KnownStatus.String(),
		Reason:          c.Reason,
		RuntimeID:       c.RuntimeID,
		ImageDigest:     c.ImageDigest,
		ExitCode:        c.ExitCode,
		NetworkBindings: c.Bindings,
		At:              r.now(),
	}
	if c.Health != container.HealthUnknown && c.KnownStatus == ContainerRunning {
		// Health describes a running container; a stopped one has none.
		ch.HealthStatus = c.Health.String()
	}
	return ch
}

// goOp runs f in the background for one container (or the task when name
// is "") and delivers its event back to the select loop.
func (r *taskRunner) goOp(name, stepName string, cancellable bool, f func(ctx context.Context) event) {
	ctx := r.ctx
	var cancel context.CancelFunc = func() {}
	if cancellable {
		ctx, cancel = context.WithCancel(r.ctx)
	}
	if name == "" {
		r.netBusy = true
		if cancellable {
			r.netCancel = cancel
		}
	} else {
		cr := r.container(name)
		cr.busy = true
		if cancellable {
			cr.cancelOp = cancel
		}
	}
	r.ops.Add(1)
	go func() {
		defer r.ops.Done()
		defer cancel()
		hook := r.e.opts.StepHook
		step := Step{TaskARN: r.st.Def.ARN, Container: name, Name: stepName}
		if hook != nil {
			hook(ctx, step)
		}
		r.log.Debug("step started", "step", stepName, "container", name)
		ev := f(ctx)
		r.log.Debug("step done", "step", stepName, "container", name, "err", ev.err)
		if hook != nil {
			step.Done, step.Err = true, ev.err
			hook(ctx, step)
		}
		if name != "" {
			ev.container = name
		}
		select {
		case r.events <- ev:
		case <-r.ctx.Done():
		}
	}()
}

func (r *taskRunner) wakeAt(t time.Time) {
	if r.next.IsZero() || t.Before(r.next) {
		r.next = t
	}
}

func (r *taskRunner) armTimer() {
	r.timer.Stop()
	if r.next.IsZero() {
		return
	}
	d := r.next.Sub(r.now())
	if d < 0 {
		d = 0
	}
	r.timer.Reset(d)
}

// stopTask moves the desired status to STOPPED with reason, if the task was
// still meant to run. The first reason wins.
func (r *taskRunner) stopTask(reason string) {
	if r.st.DesiredStatus == TaskStopped {
		return
	}
	r.st.DesiredStatus = TaskStopped
	if r.st.StoppedReason == "" {
		r.st.StoppedReason = reason
	}
}

// fail ends a container that could not be brought up.
func (r *taskRunner) fail(c *ContainerState, reason string) {
	r.e.count(func(m *Metrics) { m.Failures++ })
	c.Reason = reason
	c.DesiredStatus = ContainerStopped
	c.KnownStatus = ContainerStopped
	c.Step = stepNone
	if r.def(c).Essential {
		r.stopTask(reason)
	}
	r.mustSave(r.containerChange(c))
}

func (r *taskRunner) def(c *ContainerState) *ContainerDef {
	if d := r.st.def(c.Name); d != nil {
		return d
	}
	return &ContainerDef{Name: c.Name}
}

func (r *taskRunner) handle(ev event) {
	st := r.st
	if ev.kind == evNetUp || ev.kind == evNetDown || ev.kind == evCleaned {
		r.netBusy = false
		r.netCancel = nil
	} else if ev.kind != evExited && ev.kind != evHealth && ev.kind != evLogSecrets {
		cr := r.container(ev.container)
		cr.busy = false
		cr.cancelOp = nil
	}
	var c *ContainerState
	if ev.container != "" {
		c = st.container(ev.container)
		if c == nil {
			return
		}
	}
	switch ev.kind {
	case evPulled:
		if ev.err != nil {
			r.e.count(func(m *Metrics) { m.PullFailures++ })
			if st.DesiredStatus == TaskStopped {
				c.Step = stepNone
				r.mustSave()
				return
			}
			if errors.Is(ev.err, container.ErrUnavailable) {
				r.retryLater(c, "pull", ev.err)
				return
			}
			r.fail(c, prefixPull+ev.err.Error())
			return
		}
		c.Step = stepNone
		r.retried(c)
		if c.KnownStatus < ContainerPulled {
			c.KnownStatus = ContainerPulled
		}
		c.ImageDigest = ev.image.Digest
		c.ImageRef = ev.image.Ref
		r.e.usedImage(ev.image.Ref)
		if r.allPulled() && st.PullStoppedAt.IsZero() {
			st.PullStoppedAt = r.now()
		}
		r.mustSave()
	case evCreated:
		if ev.err != nil && ev.secrets {
			// As in ECS, a secret that cannot be fetched stops the task,
			// whichever container it belongs to.
			reason := reasonSecrets + ev.err.Error()
			r.stopTask(reason)
			r.fail(c, reason)
			return
		}
		if ev.err != nil && errors.Is(ev.err, container.ErrExists) {
			// The container of this deterministic ID was made by an
			// earlier attempt whose answer was lost (the runtime went
			// away, or the agent did): it is this container.
			r.log.Info("container made by an earlier create", "container", c.Name)
			ev.err = nil
		}
		if ev.err != nil {
			if errors.Is(ev.err, container.ErrUnavailable) && st.DesiredStatus != TaskStopped {
				r.retryLater(c, "create", ev.err)
				return
			}
			r.fail(c, prefixCreate+ev.err.Error())
			return
		}
		if ev.logSecrets != nil {
			cr := r.container(c.Name)
			cr.logSecrets, cr.haveLogSecrets = ev.logSecrets, true
		}
		c.Step = stepNone
		r.retried(c)
		c.KnownStatus = ContainerCreated
		c.RuntimeID = ContainerID(st.Def.ARN, c.Name)
		r.mustSave()
	case evStarted:
		if ev.err != nil {
			if errors.Is(ev.err, container.ErrUnavailable) && st.DesiredStatus != TaskStopped {
				// Start is idempotent: the next attempt finds the task
				// this one may have made and continues from there.
				r.retryLater(c, "start", ev.err)
				return
			}
			r.fail(c, prefixStart+ev.err.Error())
			return
		}
		r.e.count(func(m *Metrics) { m.Starts++ })
		c.Step = stepNone
		r.retried(c)
		if c.KnownStatus < ContainerRunning {
			c.KnownStatus = ContainerRunning
		}
		c.PID = ev.pid
		c.StartedAt = r.now()
		c.Bindings = bindingsFor(st, r.def(c))
		r.mustSave(r.containerChange(c))
		r.shipLog(c)
		r.watch(c.Name)
	case evStopDone:
		if ev.err == nil && c.KnownStatus < ContainerRunning {
			// A container that was created (and whose start may have
			// half-happened) has no process left: it is stopped.
			r.retried(c)
			r.exited(c, container.Exit{At: r.now()}, false)
			return
		}
		if ev.err == nil {
			// The exit arrives from the waiter; until then the step stays
			// persisted so that a restart stops the container again.
			r.container(c.Name).stopIssued = true
			if c.Retries > 0 {
				r.retried(c)
				r.mustSave()
			}
			return
		}
		if errors.Is(ev.err, container.ErrNotFound) {
			c.Step = stepNone
			r.exited(c, container.Exit{Code: -1, At: r.now()}, false)
			return
		}
		// The container may still run: it is reported STOPPED only once
		// the runtime says its process is gone, however long that takes.
		r.e.count(func(m *Metrics) { m.StopRetries++ })
		r.retryLater(c, "stop", ev.err)
	case evExited:
		r.exited(c, ev.exit, true)
	case evHealth:
		r.healthResult(c, ev.healthy)
	case evNetUp:
		if ev.err != nil {
			r.stopTask(prefixResourceInit + ev.err.Error())
			// Leave NetworkStep set so that the stop path tears down what
			// Setup may have made half-way.
			r.mustSave()
			return
		}
		st.NetworkStep = stepNone
		st.NetworkReady = true
		st.NetNSPath = ev.net.NetNSPath
		st.IPv4 = ev.net.IPv4
		st.Bindings = wireBindings(ev.net.Bindings)
		st.NetHandle = ev.net.Handle
		r.mustSave()
	case evNetDown:
		if ev.err != nil {
			r.teardownAttempts++
			r.log.Warn("tear down task network", "attempt", r.teardownAttempts, "err", ev.err)
			if r.teardownAttempts < maxTeardownAttempts {
				r.netRetryAt = r.now().Add(time.Second)
				return
			}
		}
		st.NetworkStep = stepNone
		st.NetworkReady = false
		st.NetHandle = nil
		r.mustSave()
	case evLogSecrets:
		if ev.err != nil {
			r.log.Warn("ship container logs: fetch the log driver's secretOptions", "container", c.Name, "err", ev.err)
			return
		}
		cr := r.container(c.Name)
		cr.logSecrets, cr.haveLogSecrets = ev.logSecrets, true
		r.shipLog(c)
		if c.KnownStatus == ContainerStopped {
			r.drainLog(c)
		}
	case evCleaned:
		r.cleaning = false
		if ev.err != nil {
			// The record stays, so the clean-up is retried, by this agent
			// after the delay and by the next one after a restart.
			st.CleanupRetries++
			st.CleanupError = ev.err.Error()
			delay := retryDelay(st.CleanupRetries)
			r.cleanupRetryAt = r.now().Add(delay)
			r.e.count(func(m *Metrics) { m.CleanupRetries++ })
			r.log.Warn("clean up task, will retry", "attempt", st.CleanupRetries, "retry_in", delay, "err", ev.err)
			r.mustSave()
			return
		}
		r.finished = true
		r.e.forget(st.Def.ARN)
	}
}

// retryLater records a failed attempt of a container's operation and when
// to try again; reconcile starts it again once the delay has passed.
func (r *taskRunner) retryLater(c *ContainerState, op string, err error) {
	c.Step = stepNone
	if op == "stop" {
		// The step stays persisted: a restarted agent stops it again.
		c.Step = stepStopping
	} else {
		r.e.count(func(m *Metrics) { m.RuntimeRetries++ })
	}
	c.Retries++
	c.RetryError = fmt.Sprintf("%s: %v", op, err)
	delay := retryDelay(c.Retries)
	r.container(c.Name).retryAt = r.now().Add(delay)
	r.log.Warn("container operation failed, will retry", "container", c.Name, "op", op, "attempt", c.Retries, "retry_in", delay, "err", err)
	r.mustSave()
}

// retried clears a container's retry record once its operation succeeded.
func (r *taskRunner) retried(c *ContainerState) {
	c.Retries = 0
	c.RetryError = ""
	r.container(c.Name).retryAt = time.Time{}
}

// exited records that a container's process ended.
func (r *taskRunner) exited(c *ContainerState, x container.Exit, observed bool) {
	if cr := r.container(c.Name); cr.life != nil {
		cr.life()
		cr.life = nil
	}
	if c.KnownStatus == ContainerStopped {
		return
	}
	c.KnownStatus = ContainerStopped
	c.DesiredStatus = ContainerStopped
	c.Step = stepNone
	if observed {
		code := x.Code
		c.ExitCode = &code
	}
	c.FinishedAt = x.At
	if c.FinishedAt.IsZero() {
		c.FinishedAt = r.now()
	}
	if x.OOMKill && c.Reason == "" {
		c.Reason = ReasonOOM
	}
	if r.def(c).Essential {
		r.stopTask(ReasonEssentialExited)
	}
	r.mustSave(r.containerChange(c))
	r.drainLog(c)
}

func (r *taskRunner) allPulled() bool {
	for _, c := range r.st.Containers {
		if c.KnownStatus < ContainerPulled && c.DesiredStatus == ContainerRunning {
			return false
		}
	}
	return true
}

// watch waits for a running container's exit in the background.
func (r *taskRunner) watch(name string) {
	cr := r.container(name)
	if cr.life != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	cr.life = cancel
	id := ContainerID(r.st.Def.ARN, name)
	rt := r.e.opts.Runtime
	r.ops.Add(1)
	go func() {
		defer r.ops.Done()
		for {
			x, err := rt.Wait(ctx, id)
			if err == nil {
				select {
				case r.events <- event{kind: evExited, container: name, exit: x}:
				case <-ctx.Done():
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, container.ErrNotFound) {
				select {
				case r.events <- event{kind: evExited, container: name, exit: container.Exit{Code: -1}}:
				case <-ctx.Done():
				}
				return
			}
			// The runtime went away; this is not an exit. Ask again.
			r.log.Warn("wait for container", "container", name, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}()
	if hc := r.st.def(name); hc != nil && hc.HealthCheck != nil {
		r.startHealth(ctx, name, id, *hc.HealthCheck)
	}
}

// st renders a task's statuses for debug logs.
func st(t *TaskState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", t.KnownStatus, t.DesiredStatus)
	for _, c := range t.Containers {
		fmt.Fprintf(&b, " %s=%s/%s", c.Name, c.KnownStatus, c.Step)
	}
	return b.String()
}
