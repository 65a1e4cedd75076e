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
	svc.TaskDefinition = aws.String(tdArn)
	r.Steady = false
	return nil
}
