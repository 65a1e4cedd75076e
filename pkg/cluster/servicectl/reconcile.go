package servicectl

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// svcTask is one of the service's tasks with what the controller needs.
type svcTask struct {
	rec      *records.Task
	inst     *records.Instance // nil when the instance record is gone
	idx      int               // index in the placement set, -1 when not ACTIVE
	live     bool              // not yet STOPPED
	active   bool              // live and desired RUNNING
	healthy  bool
	unhealth bool // a container reported UNHEALTHY
	// lbUnhealthy is the stop reason when a load balancer reported one of
	// the task's targets unhealthy after the grace period.
	lbUnhealthy string
}

// reconciler is one service's reconciliation inside one transaction.
type reconciler struct {
	c       *Controller
	tx      store.Tx
	rec     *records.Service
	now     time.Time
	ps      *launch.PlacementSet
	tasks   []*svcTask
	changes []records.TaskChange
	started []string
	stopped []string
	// wrote is set when a task or instance record was written; err keeps
	// the first write error of stop, which has no error result.
	wrote bool
	err   error
	// budget is how many more tasks this pass may start or stop
	// (Options.MaxTasksPerPass); capped is set when one was left for the
	// next pass.
	budget int
	capped bool
	lb     lbEvents
}

// spend takes one task from the pass's budget; false when it is used up.
func (r *reconciler) spend() bool {
	if r.budget <= 0 {
		r.capped = true
		return false
	}
	r.budget--
	return true
}

// note records a write and its error.
func (r *reconciler) note(err error) {
	r.wrote = true
	if err != nil && r.err == nil {
		r.err = err
	}
}

func (r *reconciler) name() string  { return r.rec.Name() }
func (r *reconciler) group() string { return r.rec.Group() }

func (r *reconciler) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if evs := r.rec.Service.Events; len(evs) > 0 && aws.ToString(evs[0].Message) == msg && !reportsChange(msg) {
		return // ECS does not repeat an unchanged message back to back
	}
	r.rec.AddEvent(msg, r.now)
}

// reportsChange tells the messages that report something done in this
// pass (tasks started or stopped, targets registered, deregistered or
// draining): each is news even when the pass before said the same words,
// unlike a state such as "has reached a steady state".
func reportsChange(msg string) bool {
	for _, s := range []string{"has started", "has stopped", "registered", "has begun draining"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (r *reconciler) run() error {
	r.lb = lbEvents{registered: map[string]int{}, deregistered: map[string]int{}}
	ps, err := r.c.o.Launcher.PlacementSet(r.tx, r.rec.Cluster)
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
	for i, in := range r.ps.Placer.Instances {
		byArn[in.Arn] = i
	}
	insts := map[string]*records.Instance{}
	for _, rec := range r.ps.Records {
		insts[*rec.Instance.ContainerInstanceArn] = rec
	}
	var all []*records.Task
	err := records.Each(r.tx, records.Tasks, records.ClusterPrefix(r.rec.Cluster), func(t *records.Task) error {
		if aws.ToString(t.Task.Group) == r.group() {
			all = append(all, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	grace := r.c.o.Timing.HealthyAfter
	for _, t := range all {
		st := &svcTask{rec: t, idx: -1}
		instanceArn := aws.ToString(t.Task.ContainerInstanceArn)
		if i, ok := byArn[instanceArn]; ok {
			st.idx = i
		}
		st.inst = insts[instanceArn]
		if key, _, ok := records.InstanceKeyOf(instanceArn); st.inst == nil && ok {
			rec, _, err := records.Get[records.Instance](r.tx, records.Instances, key)
			if err != nil {
				return err
			}
			st.inst = rec
		}
		last := aws.ToString(t.Task.LastStatus)
		st.live = last != "STOPPED"
		st.active = st.live && aws.ToString(t.Task.DesiredStatus) != "STOPPED" && !t.IsDeactivating()
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
			if err := records.Put(r.tx, t); err != nil {
				return err
			}
		}
		if last == "RUNNING" {
			st.healthy, st.unhealth = taskHealth(t, r.now, grace)
			st.unhealth = st.unhealth && !r.rec.InHealthGrace(t, r.now)
		}
		if !st.live {
			// A task that stopped by itself leaves its load balancers.
			if _, err := r.deactivate(st, ""); err != nil {
				return err
			}
			continue
		}
		gone := st.inst == nil || aws.ToString(st.inst.Instance.Status) == "INACTIVE"
		// A deregistered instance has no agent left: its tasks are gone.
		if st.active && gone {
			r.stop(st, "Container instance was deregistered")
			continue
		}
		// A task whose targets drained (or whose instance is gone) is told
		// to stop now.
		// (StopTask's drain ends here too, with its own code and reason.)
		if d := t.Deactivating; t.IsDeactivating() && (gone || !r.now.Before(d.Until)) && r.spend() {
			r.sendStop(st, types.TaskStopCode(d.Code), d.Reason)
		}
		r.tasks = append(r.tasks, st)
	}
	for _, st := range r.tasks {
		if st.active && aws.ToString(st.rec.Task.LastStatus) == "RUNNING" {
			if err := r.balance(st); err != nil {
				return err
			}
		}
	}
	return nil
}

// taskHealth says whether a RUNNING task counts as healthy: its essential
// containers with health checks all report HEALTHY, or, when none reports
// (no health check, or an agent that does not send health), it has run
// for grace. A reported UNHEALTHY essential container makes it unhealthy.
func taskHealth(t *records.Task, now time.Time, grace time.Duration) (healthy, unhealthy bool) {
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
		d := r.c.o.Timing.LaunchBackoff << min(n-3, 20)
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
	if err := r.rec.StartDeployment(r.rec.LastCompleted, r.now); err != nil {
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
	tdArn := aws.ToString(svc.Deployments[0].TaskDefinition)
	tdRec, ok, err := records.FindTaskDefinition(r.tx, r.c.o.Launcher.ARNs, tdArn)
	if err != nil {
		return nil, scheduler.Demand{}, nil, err
	}
	if !ok {
		return nil, scheduler.Demand{}, nil, fmt.Errorf("task definition %s of the PRIMARY deployment: %w", tdArn, store.ErrNotFound)
	}
	td := &tdRec.TaskDefinition
	d := launch.Demand(td, nil)
	req, err := launch.Request(td, d, r.group(), svc.PlacementConstraints, placementStrategy(svc), nil)
	return req, d, td, err
}

// launch places one PRIMARY task; false when nothing could take it (an
// event says why).
func (r *reconciler) launch(req *scheduler.Request, d scheduler.Demand, td *types.TaskDefinition, only int) (bool, error) {
	if !r.spend() {
		return false, nil
	}
	var idx int
	var misfits []scheduler.Misfit
	if only >= 0 {
		if reason := r.ps.Placer.PlaceOn(only, req); reason != "" {
			return false, nil
		}
		idx = only
	} else {
		idx, misfits = r.ps.Placer.Place(req)
		if idx < 0 {
			r.unableToPlace(misfits)
			return false, nil
		}
	}
	inst := r.ps.Records[idx]
	p := launch.ServiceParams(r.rec, td)
	r.wrote = true
	t, err := r.c.o.Launcher.Place(r.tx, p, inst, d, r.now)
	if err != nil {
		return false, err
	}
	r.tasks = append(r.tasks, &svcTask{rec: t, inst: inst, idx: idx, live: true, active: true})
	r.started = append(r.started, arn.ResourceID(*t.Task.TaskArn))
	r.changes = append(r.changes, records.PlacedChange(t))
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
// gone) and gives its place back to the placement set; a task registered
// with load balancers is deregistered first and told to stop once its
// targets drained. Past the pass's budget it does nothing: the task runs
// on until the next pass, which only ever leaves the service more tasks
// than it planned on.
func (r *reconciler) stop(t *svcTask, reason string) {
	if !r.spend() {
		return
	}
	t.active = false
	if t.idx >= 0 {
		r.ps.Placer.Forget(t.idx, r.group())
	}
	r.rec.Steady = false
	waits, err := r.deactivate(t, reason)
	r.note(err)
	if waits {
		return
	}
	r.sendStop(t, types.TaskStopCodeServiceSchedulerInitiated, reason)
}

// sendStop sets the task's desired status to STOPPED, to be delivered to
// its agent after the commit.
func (r *reconciler) sendStop(t *svcTask, code types.TaskStopCode, reason string) {
	rec := t.rec
	if rec.RequestStop(t.inst, code, reason, r.now) {
		rec.ServiceSawStop = true
		t.live = false
		r.note(records.Put(r.tx, t.inst))
	}
	t.active = false
	r.note(records.Put(r.tx, rec))
	r.stopped = append(r.stopped, arn.ResourceID(*rec.Task.TaskArn))
	r.changes = append(r.changes, records.StoppingChange(&rec.Task))
	r.rec.Steady = false
}

// flushEvents writes the started/stopped events of this pass.
func (r *reconciler) flushEvents() {
	r.flushLBEvents()
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
