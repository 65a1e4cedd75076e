package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// ServiceOptions tune the service controller; zero values are ECS's.
type ServiceOptions struct {
	// Interval between reconciliations when nothing wakes the controller;
	// zero means one second.
	Interval time.Duration
	// HealthyAfter is how long a RUNNING task without a reported health
	// status must run before it counts as healthy; zero means 40 s.
	HealthyAfter time.Duration
	// LaunchBackoff is the first delay after three launches in a row
	// stopped before RUNNING; it doubles per further failure up to 15
	// minutes. Zero means 10 s.
	LaunchBackoff time.Duration
}

func (o ServiceOptions) withDefaults() ServiceOptions {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.HealthyAfter <= 0 {
		o.HealthyAfter = 40 * time.Second
	}
	if o.LaunchBackoff <= 0 {
		o.LaunchBackoff = 10 * time.Second
	}
	return o
}

// wakeServices asks the controller for a reconciliation soon.
func (s *Server) wakeServices() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunServiceController reconciles every service until ctx ends: at each
// interval and whenever an API call may have changed what services need.
// The endpoint that owns the Server runs it and waits for it to return.
func (s *Server) RunServiceController(ctx context.Context) {
	tick := time.NewTicker(s.opts.Services.Interval)
	defer tick.Stop()
	for {
		if err := s.ReconcileServices(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("reconciling services", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// ReconcileServices runs one pass of the service controller over every
// ACTIVE or DRAINING service, each in its own transaction, and then tells
// the notifier which tasks to deliver or stop.
func (s *Server) ReconcileServices(ctx context.Context) error {
	var keys []string
	err := s.opts.Store.View(func(tx store.Tx) error {
		return tx.ForEach(store.Services, "", func(key string, raw []byte) error {
			var rec serviceRecord
			if err := decode(raw, &rec); err != nil {
				return err
			}
			if aws.ToString(rec.Service.Status) != "INACTIVE" {
				keys = append(keys, key)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	for _, key := range keys {
		var changes []TaskChange
		err := s.opts.Store.Update(func(tx store.Tx) error {
			var rec serviceRecord
			if err := tx.Get(store.Services, key, &rec); err != nil {
				return err
			}
			if _, err := activeCluster(tx, rec.Cluster); err != nil {
				return nil // the cluster is gone; nothing to run
			}
			before, err := json.Marshal(&rec)
			if err != nil {
				return err
			}
			r := &reconciler{s: s, tx: tx, rec: &rec, now: s.opts.Now().UTC()}
			if err := r.run(); err != nil {
				return err
			}
			if r.err != nil {
				return r.err
			}
			changes = r.changes
			after, err := json.Marshal(&rec)
			if err != nil {
				return err
			}
			if !r.wrote && bytes.Equal(before, after) {
				return errUnchanged
			}
			return s.putService(tx, &rec)
		})
		if errors.Is(err, errUnchanged) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reconcile service %s: %w", key, err)
		}
		if len(changes) > 0 {
			s.opts.Notifier.TasksChanged(ctx, changes)
		}
	}
	return nil
}

// svcTask is one of the service's tasks with what the controller needs.
type svcTask struct {
	rec      *taskRecord
	inst     *instanceRecord // nil when the instance record is gone
	idx      int             // index in the placement set, -1 when not ACTIVE
	live     bool            // not yet STOPPED
	active   bool            // live and desired RUNNING
	healthy  bool
	unhealth bool // a container reported UNHEALTHY
}

// reconciler is one service's reconciliation inside one transaction.
type reconciler struct {
	s       *Server
	tx      store.Tx
	rec     *serviceRecord
	now     time.Time
	ps      *placementSet
	tasks   []*svcTask
	changes []TaskChange
	started []string
	stopped []string
	// wrote is set when a task or instance record was written; err keeps
	// the first write error of stop, which has no error result.
	wrote bool
	err   error
}

// note records a write and its error.
func (r *reconciler) note(err error) {
	r.wrote = true
	if err != nil && r.err == nil {
		r.err = err
	}
}

// errUnchanged rolls back a pass that changed nothing, so an idle service
// costs no disk write.
var errUnchanged = errors.New("service unchanged")

func (r *reconciler) name() string  { return aws.ToString(r.rec.Service.ServiceName) }
func (r *reconciler) group() string { return "service:" + r.name() }

func (r *reconciler) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if evs := r.rec.Service.Events; len(evs) > 0 && aws.ToString(evs[0].Message) == msg && !strings.Contains(msg, "has started") && !strings.Contains(msg, "has stopped") {
		return // ECS does not repeat an unchanged message back to back
	}
	r.rec.addEvent(msg, r.now)
}

func (r *reconciler) run() error {
	ps, err := r.s.loadPlacementSet(r.tx, r.rec.Cluster)
	if err != nil {
		return err
	}
	r.ps = ps
	if err := r.loadTasks(); err != nil {
		return err
	}
	svc := &r.rec.Service
	if aws.ToString(svc.Status) == "DRAINING" {
		for _, t := range r.tasks {
			if t.active {
				r.stop(t, "Service is being deleted")
			}
		}
		r.flushEvents()
		live := 0
		for _, t := range r.tasks {
			if t.live {
				live++
			}
		}
		if live == 0 {
			svc.Status = aws.String("INACTIVE")
			svc.Deployments = []types.Deployment{}
		}
		return nil
	}
	r.circuitBreaker()
	if svc.SchedulingStrategy == types.SchedulingStrategyDaemon {
		err = r.daemon()
	} else {
		err = r.replica()
	}
	if err != nil {
		return err
	}
	r.flushEvents()
	r.finish()
	return nil
}

// loadTasks reads the service's tasks, records newly stopped and newly
// running ones (launch failures and backoff), and classifies them.
func (r *reconciler) loadTasks() error {
	byArn := map[string]int{}
	for i, in := range r.ps.placer.Instances {
		byArn[in.Arn] = i
	}
	insts := map[string]*instanceRecord{}
	for _, rec := range r.ps.records {
		insts[*rec.Instance.ContainerInstanceArn] = rec
	}
	var all []*taskRecord
	err := eachRecord(r.tx, store.Tasks, r.rec.Cluster+"/", func(t *taskRecord) error {
		if aws.ToString(t.Task.Group) == r.group() {
			all = append(all, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	grace := r.s.opts.Services.HealthyAfter
	for _, t := range all {
		st := &svcTask{rec: t, idx: -1}
		arn := aws.ToString(t.Task.ContainerInstanceArn)
		if i, ok := byArn[arn]; ok {
			st.idx = i
		}
		st.inst = insts[arn]
		if st.inst == nil {
			if rec, ok, err := r.s.loadInstance(r.tx, r.rec.Cluster, arn); err != nil {
				return err
			} else if ok {
				st.inst = rec
			}
		}
		last := aws.ToString(t.Task.LastStatus)
		st.live = last != "STOPPED"
		st.active = st.live && aws.ToString(t.Task.DesiredStatus) != "STOPPED"
		dirty := false
		if last == "RUNNING" && !t.ServiceSawRunning {
			t.ServiceSawRunning, dirty = true, true
			r.rec.LaunchFailures, r.rec.BackoffUntil = 0, 0
		}
		if !st.live && !t.ServiceSawStop {
			t.ServiceSawStop, dirty = true, true
			if t.Task.StopCode != types.TaskStopCodeServiceSchedulerInitiated && t.Task.StartedAt == nil {
				r.launchFailed(aws.ToString(t.Task.StartedBy))
			}
		}
		if dirty {
			r.wrote = true
			if err := r.s.putTask(r.tx, t); err != nil {
				return err
			}
		}
		if last == "RUNNING" {
			st.healthy, st.unhealth = taskHealth(t, r.now, grace)
		}
		if !st.live {
			continue
		}
		// A deregistered instance has no agent left: its tasks are gone.
		if st.active && (st.inst == nil || aws.ToString(st.inst.Instance.Status) == "INACTIVE") {
			r.stop(st, "Container instance was deregistered")
			continue
		}
		r.tasks = append(r.tasks, st)
	}
	return nil
}

// taskHealth says whether a RUNNING task counts as healthy: its essential
// containers with health checks all report HEALTHY, or, when none reports
// (no health check, or an agent that does not send health), it has run
// for grace. A reported UNHEALTHY essential container makes it unhealthy.
func taskHealth(t *taskRecord, now time.Time, grace time.Duration) (healthy, unhealthy bool) {
	reported, allHealthy := false, true
	for _, c := range t.Task.Containers {
		switch c.HealthStatus {
		case types.HealthStatusUnhealthy:
			return false, true
		case types.HealthStatusHealthy:
			reported = true
		default:
			allHealthy = false
		}
	}
	if reported && allHealthy {
		return true, false
	}
	started := aws.ToTime(t.Task.StartedAt)
	return !started.IsZero() && now.Sub(started) >= grace, false
}

// launchFailed counts a task of deployment id that stopped before RUNNING.
func (r *reconciler) launchFailed(id string) {
	for i := range r.rec.Service.Deployments {
		if aws.ToString(r.rec.Service.Deployments[i].Id) == id {
			r.rec.Service.Deployments[i].FailedTasks++
		}
	}
	r.rec.LaunchFailures++
	if n := r.rec.LaunchFailures; n >= 3 {
		d := r.s.opts.Services.LaunchBackoff << min(n-3, 20)
		d = min(d, 15*time.Minute)
		r.rec.BackoffUntil = r.now.Add(d).UnixNano()
		r.event("(service %s) is unable to consistently start tasks successfully. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.", r.name())
	}
}

// circuitBreaker fails the PRIMARY deployment after too many failed tasks
// and, with rollback, deploys the last completed task definition again.
func (r *reconciler) circuitBreaker() {
	svc := &r.rec.Service
	cb := svc.DeploymentConfiguration.DeploymentCircuitBreaker
	if cb == nil || !cb.Enable || len(svc.Deployments) == 0 {
		return
	}
	p := &svc.Deployments[0]
	if p.RolloutState != types.DeploymentRolloutStateInProgress {
		return
	}
	if p.FailedTasks < breakerThreshold(svc.DesiredCount) {
		return
	}
	p.RolloutState = types.DeploymentRolloutStateFailed
	p.RolloutStateReason = aws.String("ECS deployment circuit breaker: tasks failed to start.")
	p.UpdatedAt = aws.Time(r.now)
	failedID := aws.ToString(p.Id)
	r.event("(service %s) (deployment %s) deployment failed: tasks failed to start.", r.name(), failedID)
	if !cb.Rollback || r.rec.LastCompleted == "" || r.rec.LastCompleted == aws.ToString(p.TaskDefinition) {
		return
	}
	if err := startDeployment(r.rec, r.rec.LastCompleted, r.now); err != nil {
		return
	}
	r.rec.LaunchFailures, r.rec.BackoffUntil = 0, 0
	r.event("(service %s) (deployment %s) rolling back to deployment %s, task definition %s.", r.name(), failedID,
		aws.ToString(svc.Deployments[0].Id), r.rec.LastCompleted)
}

// breakerThreshold is ECS's failed-task count that trips the deployment
// circuit breaker: half the desired count, at least 3 and at most 200.
func breakerThreshold(desired int32) int32 {
	return int32(min(max(math.Ceil(0.5*float64(desired)), 3), 200))
}

// request builds the placement request for the PRIMARY deployment.
func (r *reconciler) request() (*scheduler.Request, scheduler.Demand, *types.TaskDefinition, error) {
	svc := &r.rec.Service
	tdRec, err := r.s.findTaskDefinition(r.tx, aws.ToString(svc.Deployments[0].TaskDefinition))
	if err != nil {
		return nil, scheduler.Demand{}, nil, err
	}
	td := &tdRec.TaskDefinition
	d := demandOf(td, nil)
	req, err := placementRequest(td, d, r.group(), svc.PlacementConstraints, svc.PlacementStrategy,
		[]scheduler.Strategy{{Type: "random"}})
	return req, d, td, err
}

// launch places one PRIMARY task; false when nothing could take it (an
// event says why).
func (r *reconciler) launch(req *scheduler.Request, d scheduler.Demand, td *types.TaskDefinition, only int) (bool, error) {
	var idx int
	var misfits []scheduler.Misfit
	if only >= 0 {
		if reason := r.ps.placer.PlaceOn(only, req); reason != "" {
			return false, nil
		}
		idx = only
	} else {
		idx, misfits = r.ps.placer.Place(req)
		if idx < 0 {
			r.unableToPlace(misfits)
			return false, nil
		}
	}
	inst := r.ps.records[idx]
	svc := &r.rec.Service
	p := taskParams{cluster: r.rec.Cluster, td: td, startedBy: svc.Deployments[0].Id, group: aws.String(r.group())}
	if svc.PropagateTags == types.PropagateTagsService {
		p.tags = svc.Tags
	}
	r.wrote = true
	t, err := r.s.placeTask(&call{now: r.now}, r.tx, p, inst, d)
	if err != nil {
		return false, err
	}
	r.tasks = append(r.tasks, &svcTask{rec: t, inst: inst, idx: idx, live: true, active: true})
	r.started = append(r.started, arn.ResourceID(*t.Task.TaskArn))
	r.changes = append(r.changes, placedChange(t))
	r.rec.Steady = false
	return true, nil
}

// unableToPlace writes ECS's event naming the closest instance: the one
// that got furthest through the pipeline.
func (r *reconciler) unableToPlace(ms []scheduler.Misfit) {
	prefix := fmt.Sprintf("service %s was unable to place a task because no container instance met all of its requirements.", r.name())
	if len(ms) == 0 {
		r.event("%s Reason: No Container Instances were found in your cluster. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.", prefix)
		return
	}
	rank := func(reason string) int {
		for i, x := range []string{scheduler.ReasonAgent, scheduler.ReasonCPU, scheduler.ReasonMemory, scheduler.ReasonPorts,
			scheduler.ReasonUDP, scheduler.ReasonAttribute, scheduler.ReasonMemberOf, scheduler.ReasonDistinct} {
			if x == reason {
				return i
			}
		}
		return -1
	}
	best := ms[0]
	for _, m := range ms[1:] {
		if rank(m.Reason) > rank(best.Reason) {
			best = m
		}
	}
	why := map[string]string{
		scheduler.ReasonAgent:     "is not connected to its agent",
		scheduler.ReasonCPU:       "has insufficient CPU units available",
		scheduler.ReasonMemory:    "has insufficient memory available",
		scheduler.ReasonPorts:     "is already using a port required by your task",
		scheduler.ReasonUDP:       "is already using a port required by your task",
		scheduler.ReasonAttribute: "is missing an attribute required by your task",
		scheduler.ReasonMemberOf:  "does not satisfy the memberOf placement constraint",
		scheduler.ReasonDistinct:  "already runs a task of this service (distinctInstance placement constraint)",
	}[best.Reason]
	r.event("%s The closest matching (container-instance %s) %s. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
		prefix, arn.ResourceID(best.Arn), why)
}

// stop asks a task to stop (or stops it at once when its instance is
// gone) and gives its place back to the placement set.
func (r *reconciler) stop(t *svcTask, reason string) {
	rec := t.rec
	rec.Task.DesiredStatus = aws.String("STOPPED")
	rec.Task.StopCode = types.TaskStopCodeServiceSchedulerInitiated
	rec.Task.StoppedReason = aws.String(reason)
	rec.Task.StoppingAt = aws.Time(r.now)
	rec.Task.Version++
	if t.inst != nil && aws.ToString(t.inst.Instance.Status) == "INACTIVE" {
		applyTaskStatus(rec, t.inst, "STOPPED", nil, r.now)
		rec.ServiceSawStop = true
		t.live = false
		r.note(r.s.putInstance(r.tx, t.inst))
	}
	t.active = false
	if t.idx >= 0 {
		r.ps.placer.Forget(t.idx, r.group())
	}
	r.note(r.s.putTask(r.tx, rec))
	r.stopped = append(r.stopped, arn.ResourceID(*rec.Task.TaskArn))
	r.changes = append(r.changes, stoppingChange(&rec.Task))
	r.rec.Steady = false
}

// flushEvents writes the started/stopped events of this pass.
func (r *reconciler) flushEvents() {
	if len(r.stopped) > 0 {
		r.event("(service %s) has stopped %d running tasks: %s.", r.name(), len(r.stopped), taskList(r.stopped))
	}
	if len(r.started) > 0 {
		r.event("(service %s) has started %d tasks: %s.", r.name(), len(r.started), taskList(r.started))
	}
	r.started, r.stopped = nil, nil
}

func taskList(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "(task " + id + ")"
	}
	return strings.Join(parts, " ")
}

// draining reports whether the task's instance is DRAINING.
func (t *svcTask) draining() bool {
	return t.inst != nil && aws.ToString(t.inst.Instance.Status) == "DRAINING"
}

func (r *reconciler) primaryID() string { return aws.ToString(r.rec.Service.Deployments[0].Id) }

// replica keeps desiredCount PRIMARY tasks running, rolling older
// deployments' tasks and tasks on draining instances over within
// minimumHealthyPercent and maximumPercent.
func (r *reconciler) replica() error {
	svc := &r.rec.Service
	desired := int(svc.DesiredCount)
	dc := svc.DeploymentConfiguration
	minHealthy := int(math.Ceil(float64(desired) * float64(aws.ToInt32(dc.MinimumHealthyPercent)) / 100))
	maxTotal := desired * int(aws.ToInt32(dc.MaximumPercent)) / 100
	primary := r.primaryID()
	var prim, others []*svcTask
	live, healthy := 0, 0
	for _, t := range r.tasks {
		if t.live {
			live++
		}
		if !t.active {
			continue
		}
		if t.healthy {
			healthy++
		}
		if aws.ToString(t.rec.Task.StartedBy) == primary && !t.draining() {
			prim = append(prim, t)
		} else {
			others = append(others, t)
		}
	}
	// Unhealthy tasks are replaced: stopping them costs no healthy task.
	kept := prim[:0]
	for _, t := range prim {
		if t.unhealth {
			r.stop(t, "Task failed container health checks")
			continue
		}
		kept = append(kept, t)
	}
	prim = kept
	// Scale-in: the strategies choose which PRIMARY tasks go.
	if excess := len(prim) - desired; excess > 0 {
		refs := make([]scheduler.TaskRef, 0, len(prim))
		var placed []*svcTask
		for _, t := range prim {
			if t.idx >= 0 {
				refs = append(refs, scheduler.TaskRef{ID: aws.ToString(t.rec.Task.TaskArn), Instance: t.idx, Demand: t.rec.Demand})
				placed = append(placed, t)
			}
		}
		strats, err := r.strategies()
		if err != nil {
			return err
		}
		for _, i := range r.ps.placer.ScaleIn(refs, r.group(), strats, excess) {
			if placed[i].healthy {
				healthy--
			}
			placed[i].idx = -1 // ScaleIn already gave its place back
			r.stop(placed[i], "Scaling activity initiated by (deployment "+primary+")")
		}
	}
	// Old deployments' and draining tasks: unhealthy ones go at once,
	// healthy ones while enough healthy tasks remain.
	for _, t := range others {
		reason := "Scaling activity initiated by (deployment " + primary + ")"
		if t.draining() {
			reason = "Container instance is DRAINING"
		}
		switch {
		case !t.healthy:
			r.stop(t, reason)
		case healthy-1 >= minHealthy:
			healthy--
			r.stop(t, reason)
		}
	}
	// Launch PRIMARY tasks up to desired, within maximumPercent of live tasks.
	primActive := 0
	for _, t := range prim {
		if t.active {
			primActive++
		}
	}
	n := min(desired-primActive, maxTotal-live)
	if n > 0 && svc.Deployments[0].RolloutState == types.DeploymentRolloutStateFailed {
		n = 0 // a failed deployment without rollback launches no more
	}
	if n > 0 && r.rec.BackoffUntil > r.now.UnixNano() {
		n = 0
	}
	if n <= 0 {
		return nil
	}
	req, d, td, err := r.request()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		ok, err := r.launch(req, d, td, -1)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
	}
	return nil
}

func (r *reconciler) strategies() ([]scheduler.Strategy, error) {
	var ts, fs []string
	for _, s := range r.rec.Service.PlacementStrategy {
		ts, fs = append(ts, string(s.Type)), append(fs, aws.ToString(s.Field))
	}
	return scheduler.ParseStrategies(ts, fs)
}

// daemon keeps one PRIMARY task on every ACTIVE instance that meets the
// constraints, replacing older deployments' tasks instance by instance.
func (r *reconciler) daemon() error {
	svc := &r.rec.Service
	req, d, td, err := r.request()
	if err != nil {
		return err
	}
	primary := r.primaryID()
	perInstance := map[int][]*svcTask{}
	for _, t := range r.tasks {
		if !t.live {
			continue
		}
		if t.active && (t.idx < 0 || t.draining()) {
			r.stop(t, "Container instance is DRAINING")
			continue
		}
		if t.idx >= 0 {
			perInstance[t.idx] = append(perInstance[t.idx], t)
		}
	}
	eligible := 0
	for i, in := range r.ps.placer.Instances {
		if !scheduler.Matches(in, req) {
			for _, t := range perInstance[i] {
				if t.active {
					r.stop(t, "Container instance no longer meets the service's placement constraints")
				}
			}
			continue
		}
		eligible++
		var mine, live []*svcTask
		for _, t := range perInstance[i] {
			live = append(live, t)
			if t.active && aws.ToString(t.rec.Task.StartedBy) == primary {
				mine = append(mine, t)
			}
		}
		for _, extra := range mine[min(1, len(mine)):] {
			r.stop(extra, "Scaling activity initiated by (deployment "+primary+")")
		}
		if len(mine) > 0 {
			continue
		}
		// An older deployment's task makes room first (DAEMON: 0%/100%).
		if len(live) > 0 {
			for _, t := range live {
				if t.active {
					r.stop(t, "Scaling activity initiated by (deployment "+primary+")")
				}
			}
			continue
		}
		if r.rec.BackoffUntil > r.now.UnixNano() || svc.Deployments[0].RolloutState == types.DeploymentRolloutStateFailed {
			continue
		}
		if _, err := r.launch(req, d, td, i); err != nil {
			return err
		}
	}
	svc.DesiredCount = int32(eligible)
	svc.Deployments[0].DesiredCount = int32(eligible)
	return nil
}

// finish drops drained deployments, marks the PRIMARY completed once it
// runs desiredCount healthy tasks alone, and writes the steady-state event.
func (r *reconciler) finish() {
	svc := &r.rec.Service
	primary := r.primaryID()
	perDep := map[string]int{}
	primHealthy, primActive, stray := 0, 0, 0
	for _, t := range r.tasks {
		if !t.live {
			continue
		}
		id := aws.ToString(t.rec.Task.StartedBy)
		perDep[id]++
		if id != primary || t.draining() {
			stray++
			continue
		}
		if t.active {
			primActive++
			if t.healthy {
				primHealthy++
			}
		}
	}
	deps := svc.Deployments[:1]
	for _, d := range svc.Deployments[1:] {
		if perDep[aws.ToString(d.Id)] > 0 {
			deps = append(deps, d)
		}
	}
	svc.Deployments = deps
	p := &svc.Deployments[0]
	p.DesiredCount = svc.DesiredCount
	done := len(deps) == 1 && stray == 0 && primActive == int(svc.DesiredCount) && primHealthy == primActive
	if !done {
		return
	}
	if p.RolloutState == types.DeploymentRolloutStateInProgress {
		p.RolloutState = types.DeploymentRolloutStateCompleted
		p.RolloutStateReason = aws.String("ECS deployment " + primary + " completed.")
		p.UpdatedAt = aws.Time(r.now)
		r.rec.LastCompleted = aws.ToString(p.TaskDefinition)
		r.event("(service %s) (deployment %s) deployment completed.", r.name(), primary)
	}
	if !r.rec.Steady {
		r.rec.Steady = true
		r.event("(service %s) has reached a steady state.", r.name())
	}
}
