package servicectl

import (
	"math"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
)

// The scheduling strategies of a service: REPLICA and DAEMON, and how a
// deployment completes.

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
		if !r.replaceUnhealthy(t) {
			kept = append(kept, t)
		}
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
		strats, err := launch.Strategies(placementStrategy(svc))
		if err != nil {
			return err
		}
		for _, i := range r.ps.Placer.ScaleIn(refs, r.group(), strats, excess) {
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

// replaceUnhealthy stops the PRIMARY task t when a container reported it
// unhealthy or a load balancer did after the grace period, and says so.
func (r *reconciler) replaceUnhealthy(t *svcTask) bool {
	switch {
	case t.unhealth:
		r.stop(t, "Task failed container health checks")
	case t.lbUnhealthy != "":
		// Load balancer health failures count toward the circuit
		// breaker, as ECS counts them.
		r.rec.Service.Deployments[0].FailedTasks++
		r.stop(t, t.lbUnhealthy)
	default:
		return false
	}
	return true
}

// placementStrategy is the service's placement strategies, or ECS's
// default for services when it has none (the service stores and answers
// none): spread over availability zones, then over instances.
func placementStrategy(svc *types.Service) []types.PlacementStrategy {
	if len(svc.PlacementStrategy) > 0 {
		return svc.PlacementStrategy
	}
	return []types.PlacementStrategy{
		{Type: types.PlacementStrategyTypeSpread, Field: aws.String("attribute:ecs.availability-zone")},
		{Type: types.PlacementStrategyTypeSpread, Field: aws.String("instanceId")},
	}
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
	for i, in := range r.ps.Placer.Instances {
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
			if !t.active || aws.ToString(t.rec.Task.StartedBy) != primary {
				continue
			}
			// An unhealthy task is replaced on its instance once it has
			// stopped (drained first when it has targets), as for REPLICA.
			if r.replaceUnhealthy(t) {
				continue
			}
			mine = append(mine, t)
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
