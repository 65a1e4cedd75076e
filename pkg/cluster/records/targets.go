package records

import (
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Registering and deregistering load balancer targets: the rules that the
// Elastic Load Balancing API (RegisterTargets, DeregisterTargets,
// DescribeTargetHealth) and the service controller (a service's tasks as
// targets) both apply, so a target written by one reads the same to the
// other.

// AddressAttribute is the container instance attribute that holds the
// address a load balancer reaches an instance's host ports on (an instance
// target's address). Agents register it; an operator may set it with
// `aws ecs put-attributes`.
const AddressAttribute = "berth.host-address"

// DeregistrationDelayAttribute is the target group attribute naming how
// long a deregistered target drains, in seconds; AWS's default is
// DefaultDeregistrationDelay.
const (
	DeregistrationDelayAttribute = "deregistration_delay.timeout_seconds"
	DefaultDeregistrationDelay   = 300
)

// FindInstanceByID finds the container instance an instance target's id
// names (its id or ARN), in any cluster; nil when there is none.
func FindInstanceByID(tx store.Tx, id string) (*Instance, error) {
	id = LBResourceID(id)
	var found *Instance
	err := Each(tx, Instances, "", func(in *Instance) error {
		if strings.HasSuffix(in.Key(), "/"+id) {
			found = in
			return store.ErrStopScan
		}
		return nil
	})
	return found, err
}

// HostAddress is the instance's AddressAttribute, or "".
func (r *Instance) HostAddress() string {
	for _, a := range r.Instance.Attributes {
		if aws.ToString(a.Name) == AddressAttribute {
			return aws.ToString(a.Value)
		}
	}
	return ""
}

// FindTargetGroup reads the target group an ARN of this endpoint names;
// ok is false when there is none.
func FindTargetGroup(tx store.Tx, arns LBARNs, ref string) (*TargetGroup, bool, error) {
	path, ok := arns.Own(ref, "targetgroup")
	if !ok || len(path) != 2 {
		return nil, false, nil
	}
	rec, found, err := Get[TargetGroup](tx, TargetGroups, path[1])
	if err != nil || !found || aws.ToString(rec.TargetGroup.TargetGroupArn) != ref {
		return nil, false, err
	}
	return rec, true, nil
}

// DeregistrationDelay is how long a target deregistered from the group
// drains.
func (r *TargetGroup) DeregistrationDelay() time.Duration {
	v, ok := r.Attributes[DeregistrationDelayAttribute]
	if !ok {
		return DefaultDeregistrationDelay * time.Second
	}
	n, _ := strconv.Atoi(v)
	return time.Duration(n) * time.Second
}

// LiveTargets are a target group's targets not done draining at now, in
// key order.
func LiveTargets(tx store.Tx, tg *TargetGroup, now time.Time) ([]*Target, error) {
	var out []*Target
	err := Each(tx, Targets, tg.Key()+"/", func(t *Target) error {
		if !t.Drained(now) {
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// Drained reports whether the target was deregistered and its draining
// ended at now: it is gone, whether or not its record was pruned yet.
func (r *Target) Drained(now time.Time) bool {
	return !r.DrainingUntil.IsZero() && !now.Before(r.DrainingUntil)
}

// PruneDrained deletes the targets of a target group whose draining ended.
func PruneDrained(tx store.Tx, tg *TargetGroup, now time.Time) error {
	var done []string
	err := Each(tx, Targets, tg.Key()+"/", func(t *Target) error {
		if t.Drained(now) {
			done = append(done, t.Key())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range done {
		if err := tx.Delete(Targets, key); err != nil {
			return err
		}
	}
	return nil
}

// RegisterTarget registers target id:port in tg; a target registered and
// not draining stays as it is (registered is false) unless fresh is set, a
// draining one is registered afresh. A fresh registration starts the
// target's health over (initial).
func RegisterTarget(tx store.Tx, tg *TargetGroup, id string, port int32, now time.Time, fresh bool) (registered bool, err error) {
	key := TargetKey(tg.Key(), id, port)
	t, found, err := Get[Target](tx, Targets, key)
	if err != nil {
		return false, err
	}
	if found && t.DrainingUntil.IsZero() && !fresh {
		return false, nil
	}
	t = &Target{TargetGroupArn: aws.ToString(tg.TargetGroup.TargetGroupArn), ID: id, Port: port, RegisteredAt: now}
	return true, Put(tx, t)
}

// DeregisterTarget starts draining t, a target of tg, for the group's
// deregistration delay and returns when it ends; a target already
// draining keeps its end. A group no load balancer uses has no
// connections to drain, so there, as with a zero delay, the target is
// deleted at once (until is now).
func DeregisterTarget(tx store.Tx, tg *TargetGroup, t *Target, now time.Time) (until time.Time, err error) {
	if !t.DrainingUntil.IsZero() {
		return t.DrainingUntil, nil
	}
	delay := tg.DeregistrationDelay()
	if delay == 0 || len(tg.TargetGroup.LoadBalancerArns) == 0 {
		return now, tx.Delete(Targets, t.Key())
	}
	t.DrainingUntil = now.Add(delay)
	return t.DrainingUntil, Put(tx, t)
}

// State is the target's health as AWS shows it: draining while it
// drains; unused when no load balancer uses the group or the instance is
// gone or unreachable; unavailable when health checks are off; otherwise
// the data plane's last report since the target was registered, or
// initial before one.
func (r *Target) State(tx store.Tx, tg *TargetGroup) (elbtypes.TargetHealth, error) {
	h := func(state elbtypes.TargetHealthStateEnum, reason elbtypes.TargetHealthReasonEnum, desc string) (elbtypes.TargetHealth, error) {
		out := elbtypes.TargetHealth{State: state, Reason: reason}
		if desc != "" {
			out.Description = aws.String(desc)
		}
		return out, nil
	}
	switch {
	case !r.DrainingUntil.IsZero():
		return h(elbtypes.TargetHealthStateEnumDraining, elbtypes.TargetHealthReasonEnumDeregistrationInProgress, "Target deregistration is in progress")
	case len(tg.TargetGroup.LoadBalancerArns) == 0:
		return h(elbtypes.TargetHealthStateEnumUnused, elbtypes.TargetHealthReasonEnumNotInUse, "Target group is not configured to receive traffic from the load balancer")
	}
	if tg.TargetGroup.TargetType == elbtypes.TargetTypeEnumInstance {
		in, err := FindInstanceByID(tx, r.ID)
		if err != nil {
			return elbtypes.TargetHealth{}, err
		}
		switch {
		case in == nil || in.Status() == "INACTIVE":
			return h(elbtypes.TargetHealthStateEnumUnused, elbtypes.TargetHealthReasonEnumInvalidState, "Target is in the stopped state")
		case in.HostAddress() == "":
			return h(elbtypes.TargetHealthStateEnumUnused, elbtypes.TargetHealthReasonEnumInvalidState,
				"The container instance has no "+AddressAttribute+" attribute, so the load balancer cannot reach it")
		}
	}
	switch rep := r.Health; {
	case rep != nil && !rep.ReportedAt.Before(r.RegisteredAt):
		return h(elbtypes.TargetHealthStateEnum(rep.State), elbtypes.TargetHealthReasonEnum(rep.Reason), rep.Description)
	case !aws.ToBool(tg.TargetGroup.HealthCheckEnabled):
		return h(elbtypes.TargetHealthStateEnumUnavailable, elbtypes.TargetHealthReasonEnumHealthCheckDisabled, "Health checks are disabled")
	default:
		return h(elbtypes.TargetHealthStateEnumInitial, elbtypes.TargetHealthReasonEnumRegistrationInProgress, "Target registration is in progress")
	}
}

// TaskTarget is a load balancer target that the service controller
// registered for a task: the task's container port as the target group
// reaches it.
type TaskTarget struct {
	TargetGroupArn string
	ID             string
	Port           int32
	// ContainerName and ContainerPort are the service's loadBalancers
	// entry the target was registered for.
	ContainerName string
	ContainerPort int32
	// RegisteredAt is the target record's registration time: a record
	// registered at another time is another task's (a host port used
	// again), which deregistering this task leaves alone.
	RegisteredAt time.Time
}

// Deactivation is a service task being taken out of its load balancers
// before it is stopped (ECS's DEACTIVATING): its targets drain until
// Until, then the stop with Code and Reason is sent to its agent.
type Deactivation struct {
	Until  time.Time
	Code   string
	Reason string
}

// Deactivate takes the task out of its load balancers before its stop, as
// ECS does for a service's task, whoever stops it (the service controller
// or StopTask): its targets are deregistered and, when they drain (a delay
// applies, its instance inst is reachable and the task still runs), it
// becomes DEACTIVATING until they are done and waits is true; the service
// controller then stops it with code and reason. False means nothing to
// wait for: stop it now. The caller writes the record.
func (t *Task) Deactivate(tx store.Tx, arns LBARNs, inst *Instance, code, reason string, now time.Time) (waits bool, err error) {
	if len(t.Targets) == 0 || t.TargetsDeregistered {
		return false, nil
	}
	until, err := t.DeregisterTargets(tx, arns, now)
	if err != nil {
		return false, err
	}
	if !until.After(now) || inst == nil || inst.Status() == "INACTIVE" || aws.ToString(t.Task.LastStatus) == "STOPPED" {
		return false, nil
	}
	t.Deactivating = &Deactivation{Until: until, Code: code, Reason: reason}
	t.Task.LastStatus = aws.String("DEACTIVATING")
	t.Task.Version++
	return true, nil
}

// IsDeactivating reports whether the task is draining before its stop.
func (t *Task) IsDeactivating() bool {
	return t.Deactivating != nil && aws.ToString(t.Task.DesiredStatus) != "STOPPED"
}

// DeregisterTargets deregisters every target the task was registered as
// (once) and returns when the last one's draining ends; a target group or
// target that is gone has nothing to drain.
func (t *Task) DeregisterTargets(tx store.Tx, arns LBARNs, now time.Time) (until time.Time, err error) {
	if t.TargetsDeregistered {
		return until, nil
	}
	t.TargetsDeregistered = true
	until = now
	for _, tt := range t.Targets {
		tg, ok, err := FindTargetGroup(tx, arns, tt.TargetGroupArn)
		if err != nil || !ok {
			if err != nil {
				return until, err
			}
			continue
		}
		target, found, err := Get[Target](tx, Targets, TargetKey(tg.Key(), tt.ID, tt.Port))
		if err != nil {
			return until, err
		}
		if !found || target.Drained(now) || !target.RegisteredAt.Equal(tt.RegisteredAt) {
			continue
		}
		end, err := DeregisterTarget(tx, tg, target, now)
		if err != nil {
			return until, err
		}
		if end.After(until) {
			until = end
		}
	}
	return until, nil
}
