package ecsapi

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The service deployments and service revisions of ECS are the
// deployments the service controller keeps (records.Service.History):
// each deployment deploys one revision, and both are named by the
// deployment's id.

// maxDeploymentRefs is how many ARNs DescribeServiceDeployments and
// DescribeServiceRevisions take.
const maxDeploymentRefs = 20

// loadDeployment resolves a service deployment or revision ARN (typ) to
// its service and history record; ok is false when it names none.
func (s *Server) loadDeployment(tx store.Tx, typ, ref string) (*records.Service, *records.DeploymentRecord, bool, error) {
	cluster, name, id, ok := s.arns.DeploymentRef(typ, ref)
	if !ok {
		return nil, nil, false, nil
	}
	rec, ok, err := records.Get[records.Service](tx, records.Services, records.ServiceKey(cluster, name))
	if err != nil || !ok {
		return nil, nil, false, err
	}
	h, ok := rec.Deployment(id)
	return rec, h, ok, nil
}

// revisionSummary is the summary of the revision deployment h deploys,
// with the service's task counts for it.
func (s *Server) revisionSummary(tx store.Tx, rec *records.Service, id string) (*types.ServiceRevisionSummary, error) {
	sum := &types.ServiceRevisionSummary{Arn: aws.String(s.arns.ServiceRevision(rec.Cluster, rec.Name(), id))}
	for _, d := range rec.Service.Deployments {
		if aws.ToString(d.Id) == id {
			sum.RequestedTaskCount = d.DesiredCount
		}
	}
	err := records.Each(tx, records.Tasks, records.ClusterPrefix(rec.Cluster), func(t *records.Task) error {
		if aws.ToString(t.Task.StartedBy) != id || aws.ToString(t.Task.Group) != rec.Group() || !t.Unstopped() {
			return nil
		}
		if aws.ToString(t.Task.LastStatus) == "RUNNING" {
			sum.RunningTaskCount++
		} else {
			sum.PendingTaskCount++
		}
		return nil
	})
	return sum, err
}

func (s *Server) serviceDeployment(tx store.Tx, rec *records.Service, h *records.DeploymentRecord) (types.ServiceDeployment, error) {
	status, reason, finished := rec.DeploymentStatus(h)
	sd := types.ServiceDeployment{
		ServiceDeploymentArn:    aws.String(s.arns.ServiceDeployment(rec.Cluster, rec.Name(), h.ID)),
		ServiceArn:              rec.Service.ServiceArn,
		ClusterArn:              rec.Service.ClusterArn,
		CreatedAt:               aws.Time(h.CreatedAt),
		StartedAt:               aws.Time(h.CreatedAt),
		UpdatedAt:               aws.Time(h.CreatedAt),
		FinishedAt:              finished,
		Status:                  status,
		DeploymentConfiguration: rec.Service.DeploymentConfiguration,
		SourceServiceRevisions:  []types.ServiceRevisionSummary{},
	}
	if reason != "" {
		sd.StatusReason = aws.String(reason)
	}
	if finished != nil {
		sd.UpdatedAt = finished
	}
	if status == types.ServiceDeploymentStatusStopped {
		sd.StoppedAt = finished
	}
	if cb := rec.Service.DeploymentConfiguration.DeploymentCircuitBreaker; cb != nil && cb.Enable {
		sd.DeploymentCircuitBreaker = &types.ServiceDeploymentCircuitBreaker{Status: types.ServiceDeploymentRollbackMonitorsStatusMonitoring}
	}
	target, err := s.revisionSummary(tx, rec, h.ID)
	if err != nil {
		return sd, err
	}
	sd.TargetServiceRevision = target
	if h.Source != "" {
		src, err := s.revisionSummary(tx, rec, h.Source)
		if err != nil {
			return sd, err
		}
		sd.SourceServiceRevisions = append(sd.SourceServiceRevisions, *src)
	}
	return sd, nil
}

func (s *Server) describeServiceDeployments(c *call, in *ecs.DescribeServiceDeploymentsInput) (smithy.Serializable, error) {
	if len(in.ServiceDeploymentArns) == 0 || len(in.ServiceDeploymentArns) > maxDeploymentRefs {
		return nil, invalidParam("serviceDeploymentArns must have between 1 and %d items.", maxDeploymentRefs)
	}
	out := &ecs.DescribeServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeployment{}, Failures: []types.Failure{}}
	err := s.opts.Store.View(func(tx store.Tx) error {
		for _, ref := range in.ServiceDeploymentArns {
			rec, h, ok, err := s.loadDeployment(tx, "service-deployment", ref)
			if err != nil {
				return err
			}
			if !ok {
				out.Failures = append(out.Failures, missingFailure(ref))
				continue
			}
			sd, err := s.serviceDeployment(tx, rec, h)
			if err != nil {
				return err
			}
			out.ServiceDeployments = append(out.ServiceDeployments, sd)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listServiceDeploymentsRequest is ListServiceDeployments' input with
// createdAt read as epoch seconds, as the SDKs send timestamps.
type listServiceDeploymentsRequest struct {
	ecs.ListServiceDeploymentsInput
	CreatedAt *struct {
		After  *api.ECSEpochTime `json:"after"`
		Before *api.ECSEpochTime `json:"before"`
	} `json:"createdAt"`
}

func (s *Server) listServiceDeployments(c *call, in *listServiceDeploymentsRequest) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	for _, st := range in.Status {
		if !slices.Contains(types.ServiceDeploymentStatus("").Values(), st) {
			return nil, invalidParam("status value %q is not a service deployment status.", st)
		}
	}
	var briefs []types.ServiceDeploymentBrief
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		if _, err := activeCluster(tx, cluster); err != nil {
			return nil, err
		}
		rec, ok, err := s.loadService(tx, cluster, aws.ToString(in.Service))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, clientErr("ServiceNotFoundException", "Service not found.")
		}
		var arns []string
		for i := range rec.History {
			h := &rec.History[i]
			status, reason, finished := rec.DeploymentStatus(h)
			switch {
			case len(in.Status) > 0 && !slices.Contains(in.Status, status),
				in.CreatedAt != nil && in.CreatedAt.After != nil && h.CreatedAt.Before(in.CreatedAt.After.Time),
				in.CreatedAt != nil && in.CreatedAt.Before != nil && h.CreatedAt.After(in.CreatedAt.Before.Time):
				continue
			}
			b := types.ServiceDeploymentBrief{
				ServiceDeploymentArn: aws.String(s.arns.ServiceDeployment(cluster, rec.Name(), h.ID)),
				ServiceArn:           rec.Service.ServiceArn, ClusterArn: rec.Service.ClusterArn,
				CreatedAt: aws.Time(h.CreatedAt), StartedAt: aws.Time(h.CreatedAt), FinishedAt: finished, Status: status,
				TargetServiceRevisionArn: aws.String(s.arns.ServiceRevision(cluster, rec.Name(), h.ID)),
			}
			if reason != "" {
				b.StatusReason = aws.String(reason)
			}
			briefs = append(briefs, b)
			arns = append(arns, aws.ToString(b.ServiceDeploymentArn))
		}
		return arns, nil
	})
	if err != nil {
		return nil, err
	}
	out := &ecs.ListServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeploymentBrief{}, NextToken: next}
	for _, arn := range page {
		for _, b := range briefs {
			if aws.ToString(b.ServiceDeploymentArn) == arn {
				out.ServiceDeployments = append(out.ServiceDeployments, b)
			}
		}
	}
	return out, nil
}

func (s *Server) describeServiceRevisions(c *call, in *ecs.DescribeServiceRevisionsInput) (smithy.Serializable, error) {
	if len(in.ServiceRevisionArns) == 0 || len(in.ServiceRevisionArns) > maxDeploymentRefs {
		return nil, invalidParam("serviceRevisionArns must have between 1 and %d items.", maxDeploymentRefs)
	}
	out := &ecs.DescribeServiceRevisionsOutput{ServiceRevisions: []types.ServiceRevision{}, Failures: []types.Failure{}}
	err := s.opts.Store.View(func(tx store.Tx) error {
		for _, ref := range in.ServiceRevisionArns {
			rec, h, ok, err := s.loadDeployment(tx, "service-revision", ref)
			if err != nil {
				return err
			}
			if !ok {
				out.Failures = append(out.Failures, missingFailure(ref))
				continue
			}
			rev := types.ServiceRevision{
				ServiceRevisionArn: aws.String(ref), ServiceArn: rec.Service.ServiceArn, ClusterArn: rec.Service.ClusterArn,
				TaskDefinition: aws.String(h.TaskDefinition), LaunchType: h.LaunchType, CreatedAt: aws.Time(h.CreatedAt),
				LoadBalancers: []types.LoadBalancer{}, ServiceRegistries: []types.ServiceRegistry{}, ContainerImages: []types.ContainerImage{},
			}
			if td, ok, err := records.FindTaskDefinition(tx, s.arns, h.TaskDefinition); err != nil {
				return err
			} else if ok {
				for _, cd := range td.TaskDefinition.ContainerDefinitions {
					rev.ContainerImages = append(rev.ContainerImages, types.ContainerImage{ContainerName: cd.Name, Image: cd.Image})
				}
			}
			out.ServiceRevisions = append(out.ServiceRevisions, rev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) stopServiceDeployment(c *call, in *ecs.StopServiceDeploymentInput) (smithy.Serializable, error) {
	switch in.StopType {
	case "", types.StopServiceDeploymentStopTypeRollback:
	default:
		return nil, invalidParam("stopType %s is not supported by this endpoint: a deployment is stopped by rolling back (ROLLBACK).", in.StopType)
	}
	ref := aws.ToString(in.ServiceDeploymentArn)
	err := s.opts.Store.Update(func(tx store.Tx) error {
		rec, h, ok, err := s.loadDeployment(tx, "service-deployment", ref)
		if err != nil {
			return err
		}
		if !ok {
			return clientErr("ServiceDeploymentNotFoundException", "The service deployment %s does not exist.", ref)
		}
		svc := &rec.Service
		if aws.ToString(svc.Status) != "ACTIVE" {
			return clientErr("ServiceNotActiveException", "Service was not ACTIVE.")
		}
		if status, _, _ := rec.DeploymentStatus(h); status != types.ServiceDeploymentStatusInProgress || aws.ToString(svc.Deployments[0].Id) != h.ID {
			return clientErr("ConflictException", "The service deployment %s is %s: only the IN_PROGRESS deployment can be stopped.", ref, status)
		}
		if rec.LastCompleted == "" || rec.LastCompleted == h.TaskDefinition {
			return invalidParam("serviceDeploymentArn %s has no earlier completed deployment to roll back to.", ref)
		}
		if err := rec.StartDeployment(rec.LastCompleted, c.now); err != nil {
			return err
		}
		h, _ = rec.Deployment(h.ID)
		h.Status, h.StatusReason = types.ServiceDeploymentStatusStopped, "Stopped by StopServiceDeployment: rolling back to "+rec.LastCompleted+"."
		rec.AddEvent("(service "+rec.Name()+") deployment "+aws.ToString(svc.Deployments[1].Id)+" stopped: rolling back to "+rec.LastCompleted+".", c.now)
		return records.Put(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
	return &ecs.StopServiceDeploymentOutput{ServiceDeploymentArn: aws.String(ref)}, nil
}
