package records

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// MaxServiceEvents is how many events a service keeps, as ECS does.
const MaxServiceEvents = 100

// Name is the service's name.
func (r *Service) Name() string { return aws.ToString(r.Service.ServiceName) }

// Group is the task group of the service's tasks.
func (r *Service) Group() string { return "service:" + r.Name() }

// SetDesiredCount sets the service's desired count, as UpdateService and
// Application Auto Scaling change it: the primary deployment's too, and a
// steady-state event is due again when it changed. The caller writes the
// record and wakes the service controller.
func (r *Service) SetDesiredCount(n int32) {
	if n != r.Service.DesiredCount {
		r.Steady = false
	}
	r.Service.DesiredCount = n
	if len(r.Service.Deployments) > 0 {
		r.Service.Deployments[0].DesiredCount = n
	}
}

// AddEvent puts msg first in the service's events, keeping at most
// MaxServiceEvents.
func (r *Service) AddEvent(msg string, now time.Time) {
	id, err := NewUUID()
	if err != nil {
		id = strconv.FormatInt(now.UnixNano(), 10)
	}
	ev := types.ServiceEvent{Id: aws.String(id), Message: aws.String(msg), CreatedAt: aws.Time(now)}
	r.Service.Events = append([]types.ServiceEvent{ev}, r.Service.Events...)
	if len(r.Service.Events) > MaxServiceEvents {
		r.Service.Events = r.Service.Events[:MaxServiceEvents]
	}
}

// StartDeployment makes a new PRIMARY deployment of tdArn with the
// service's desired count and launch type; the previous ones become ACTIVE
// and are drained by the service controller.
func (r *Service) StartDeployment(tdArn string, now time.Time) error {
	id, err := newDeploymentID()
	if err != nil {
		return err
	}
	svc := &r.Service
	if len(svc.Deployments) > 0 {
		r.endDeployment(&svc.Deployments[0], id, now)
	}
	for i := range svc.Deployments {
		svc.Deployments[i].Status = aws.String("ACTIVE")
		svc.Deployments[i].UpdatedAt = aws.Time(now)
	}
	d := types.Deployment{
		Id: aws.String(id), Status: aws.String("PRIMARY"), TaskDefinition: aws.String(tdArn),
		DesiredCount: svc.DesiredCount, CreatedAt: aws.Time(now), UpdatedAt: aws.Time(now), LaunchType: svc.LaunchType,
		RolloutState: types.DeploymentRolloutStateInProgress, RolloutStateReason: aws.String("ECS deployment " + id + " in progress."),
	}
	svc.Deployments = append([]types.Deployment{d}, svc.Deployments...)
	r.History = append([]DeploymentRecord{{ID: id, TaskDefinition: tdArn, LaunchType: svc.LaunchType,
		DesiredCount: svc.DesiredCount, CreatedAt: now, Source: r.primaryID(), LoadBalancers: svc.LoadBalancers}}, r.History...)
	if len(r.History) > MaxDeploymentHistory {
		r.History = r.History[:MaxDeploymentHistory]
	}
	svc.TaskDefinition = aws.String(tdArn)
	r.Steady = false
	return nil
}

// MaxDeploymentHistory is how many deployments a service remembers.
const MaxDeploymentHistory = 50

// DeploymentRecord is one deployment of a service as ECS's service
// deployments and service revisions show it.
type DeploymentRecord struct {
	// ID is the deployment's id, "ecs-svc/<19 digits>".
	ID             string
	TaskDefinition string
	LaunchType     types.LaunchType `json:",omitempty"`
	DesiredCount   int32
	CreatedAt      time.Time
	// FinishedAt, Status and StatusReason are set when the deployment was
	// replaced: SUCCESSFUL when it had completed, STOPPED when it was still
	// rolling out, ROLLBACK_SUCCESSFUL when it had failed and was rolled
	// back.
	FinishedAt   *time.Time                    `json:",omitempty"`
	Status       types.ServiceDeploymentStatus `json:",omitempty"`
	StatusReason string                        `json:",omitempty"`
	// Source is the id of the deployment it replaced.
	Source string `json:",omitempty"`
	// LoadBalancers are the service's loadBalancers when the deployment
	// started: where its tasks are registered.
	LoadBalancers []types.LoadBalancer `json:",omitempty"`
}

// LoadBalancersOf are the loadBalancers the tasks of deployment id are
// registered with: the deployment's, or the service's for a deployment
// the history no longer holds.
func (r *Service) LoadBalancersOf(id string) []types.LoadBalancer {
	if h, ok := r.Deployment(id); ok {
		return h.LoadBalancers
	}
	return r.Service.LoadBalancers
}

// primaryID is the id of the history's newest deployment before the one
// being added, or "".
func (r *Service) primaryID() string {
	if len(r.History) == 0 {
		return ""
	}
	return r.History[0].ID
}

// Deployment returns the history record of deployment id.
func (r *Service) Deployment(id string) (*DeploymentRecord, bool) {
	for i := range r.History {
		if r.History[i].ID == id {
			return &r.History[i], true
		}
	}
	return nil, false
}

// endDeployment records in the history how the PRIMARY deployment d ended
// on being replaced by deployment next.
func (r *Service) endDeployment(d *types.Deployment, next string, now time.Time) {
	h, ok := r.Deployment(aws.ToString(d.Id))
	if !ok || h.Status != "" {
		return
	}
	h.FinishedAt = aws.Time(now)
	switch d.RolloutState {
	case types.DeploymentRolloutStateCompleted:
		h.Status, h.StatusReason = types.ServiceDeploymentStatusSuccessful, "ECS deployment "+h.ID+" completed."
	case types.DeploymentRolloutStateFailed:
		h.Status, h.StatusReason = types.ServiceDeploymentStatusRollbackSuccessful, aws.ToString(d.RolloutStateReason)
	default:
		h.Status, h.StatusReason = types.ServiceDeploymentStatusStopped, "Replaced by ECS deployment "+next+"."
	}
}

// DeploymentStatus is deployment h's status now: its recorded end, or,
// while it is the PRIMARY deployment, its rollout's state.
func (r *Service) DeploymentStatus(h *DeploymentRecord) (types.ServiceDeploymentStatus, string, *time.Time) {
	if h.Status != "" {
		return h.Status, h.StatusReason, h.FinishedAt
	}
	for _, d := range r.Service.Deployments {
		if aws.ToString(d.Id) != h.ID {
			continue
		}
		switch d.RolloutState {
		case types.DeploymentRolloutStateCompleted:
			return types.ServiceDeploymentStatusSuccessful, aws.ToString(d.RolloutStateReason), d.UpdatedAt
		case types.DeploymentRolloutStateFailed:
			return types.ServiceDeploymentStatusRollbackInProgress, aws.ToString(d.RolloutStateReason), nil
		}
	}
	return types.ServiceDeploymentStatusInProgress, "", nil
}

// InHealthGrace reports whether task t of the service started less than
// the service's healthCheckGracePeriodSeconds ago: its unhealthy health
// checks do not count yet.
func (r *Service) InHealthGrace(t *Task, now time.Time) bool {
	grace := aws.ToInt32(r.Service.HealthCheckGracePeriodSeconds)
	started := aws.ToTime(t.Task.StartedAt)
	return grace > 0 && !started.IsZero() && now.Sub(started) < time.Duration(grace)*time.Second
}
