package servicectl

import (
	"slices"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// A service's loadBalancers, as ECS runs them: each RUNNING task is
// registered in every target group of its deployment at its instance and
// the host port of the named container port; it counts as healthy only
// once every target is healthy; a target reported unhealthy after the
// health check grace period gets the task replaced; and a task the
// controller stops is first deregistered and drains for the target
// group's deregistration delay (DEACTIVATING) before its agent is told.

// lbEvents gathers the load balancing events of one pass, written with the
// started/stopped ones.
type lbEvents struct {
	registered   map[string]int // target group ARN -> targets
	deregistered map[string]int
	draining     []string // task ids that began draining
}

func (r *reconciler) lbARNs() records.LBARNs {
	a := r.c.o.Launcher.ARNs
	return records.LBARNs{Region: a.Region, AccountID: a.AccountID}
}

// balance registers the RUNNING task t in its deployment's target groups
// and sets its health from theirs: healthy once every target is healthy
// and no container is unhealthy; a target unhealthy after the grace period
// marks it for replacement.
func (r *reconciler) balance(t *svcTask) error {
	lbs := r.rec.LoadBalancersOf(aws.ToString(t.rec.Task.StartedBy))
	if len(lbs) == 0 {
		return nil
	}
	healthy := !t.unhealth
	for _, lb := range lbs {
		tgArn := aws.ToString(lb.TargetGroupArn)
		tg, ok, err := records.FindTargetGroup(r.tx, r.lbARNs(), tgArn)
		if err != nil {
			return err
		}
		if !ok {
			healthy = false
			r.event("(service %s) failed to register targets in (target-group %s) with (error The target group does not exist).", r.name(), tgArn)
			continue
		}
		port, ok := hostPort(t.rec, aws.ToString(lb.ContainerName), aws.ToInt32(lb.ContainerPort))
		if !ok {
			healthy = false // the agent has not reported the binding yet
			continue
		}
		id := arn.ResourceID(aws.ToString(t.rec.Task.ContainerInstanceArn))
		i := slices.IndexFunc(t.rec.Targets, func(tt records.TaskTarget) bool {
			return tt.TargetGroupArn == tgArn && tt.ID == id && tt.Port == port
		})
		// A target the task has not registered yet is registered afresh,
		// even over another task's record of the same instance and port.
		registered, err := records.RegisterTarget(r.tx, tg, id, port, r.now, i < 0)
		if err != nil {
			return err
		}
		if registered {
			tt := records.TaskTarget{TargetGroupArn: tgArn, ID: id, Port: port, ContainerName: aws.ToString(lb.ContainerName),
				ContainerPort: aws.ToInt32(lb.ContainerPort), RegisteredAt: r.now}
			if i < 0 {
				t.rec.Targets = append(t.rec.Targets, tt)
			} else {
				t.rec.Targets[i] = tt
			}
			r.note(records.Put(r.tx, t.rec))
			r.lb.registered[tgArn]++
		}
		target, found, err := records.Get[records.Target](r.tx, records.Targets, records.TargetKey(tg.Key(), id, port))
		if err != nil {
			return err
		}
		if !found {
			healthy = false
			continue
		}
		state, err := target.State(r.tx, tg)
		if err != nil {
			return err
		}
		switch state.State {
		case elbtypes.TargetHealthStateEnumHealthy:
		case elbtypes.TargetHealthStateEnumUnavailable:
			// Health checks off: nothing to wait for.
			healthy = healthy && state.Reason == elbtypes.TargetHealthReasonEnumHealthCheckDisabled
		case elbtypes.TargetHealthStateEnumUnhealthy:
			healthy = false
			if !r.rec.InHealthGrace(t.rec, r.now) && t.lbUnhealthy == "" {
				why := aws.ToString(state.Description)
				if why == "" {
					why = string(state.Reason)
				}
				r.event("(service %s) (instance %s) (port %d) is unhealthy in (target-group %s) due to (reason %s).", r.name(), id, port, tgArn, why)
				t.lbUnhealthy = "Task failed ELB health checks in (target-group " + tgArn + ")"
			}
		default:
			healthy = false
		}
	}
	t.healthy = healthy
	return nil
}

// hostPort is the host port of the task's container name bound to
// containerPort, as its agent reported it.
func hostPort(t *records.Task, name string, containerPort int32) (int32, bool) {
	for _, c := range t.Task.Containers {
		if aws.ToString(c.Name) != name {
			continue
		}
		for _, b := range c.NetworkBindings {
			if aws.ToInt32(b.ContainerPort) == containerPort && b.Protocol != types.TransportProtocolUdp && aws.ToInt32(b.HostPort) > 0 {
				return aws.ToInt32(b.HostPort), true
			}
		}
	}
	return 0, false
}

// deactivate deregisters the task's targets (records.Task.Deactivate) and
// notes the pass's events; true when the task drains (DEACTIVATING): its
// stop waits.
func (r *reconciler) deactivate(t *svcTask, reason string) (bool, error) {
	if len(t.rec.Targets) == 0 || t.rec.TargetsDeregistered {
		return false, nil
	}
	waits, err := t.rec.Deactivate(r.tx, r.lbARNs(), t.inst, string(types.TaskStopCodeServiceSchedulerInitiated), reason, r.now)
	if err != nil {
		return false, err
	}
	for _, tt := range t.rec.Targets {
		r.lb.deregistered[tt.TargetGroupArn]++
	}
	if waits {
		r.lb.draining = append(r.lb.draining, arn.ResourceID(aws.ToString(t.rec.Task.TaskArn)))
	}
	return waits, records.Put(r.tx, t.rec)
}

// flushLBEvents writes the pass's registration and draining events.
func (r *reconciler) flushLBEvents() {
	for _, m := range []struct {
		counts map[string]int
		verb   string
	}{{r.lb.deregistered, "deregistered"}, {r.lb.registered, "registered"}} {
		tgs := make([]string, 0, len(m.counts))
		for tg := range m.counts {
			tgs = append(tgs, tg)
		}
		sort.Strings(tgs)
		for _, tg := range tgs {
			r.event("(service %s) %s %d targets in (target-group %s)", r.name(), m.verb, m.counts[tg], tg)
		}
	}
	if n := len(r.lb.draining); n > 0 {
		r.event("(service %s) has begun draining connections on %d tasks.", r.name(), n)
	}
	r.lb = lbEvents{registered: map[string]int{}, deregistered: map[string]int{}}
}
