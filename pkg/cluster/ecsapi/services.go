package ecsapi

import (
	"slices"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"

	"github.com/berth-dev/berth/pkg/api/arn"
)

// serviceName resolves a service name or ARN in cluster.
func (s *Server) serviceName(cluster, ref string) (string, bool) {
	if ref == "" {
		return "", false
	}
	if id, ok := s.arns.ResourceID("service", cluster, ref); ok {
		return id, records.NameRE.MatchString(id)
	}
	return "", false
}

func (s *Server) loadService(tx store.Tx, cluster, ref string) (*records.Service, bool, error) {
	name, ok := s.serviceName(cluster, ref)
	if !ok {
		return nil, false, nil
	}
	return records.Get[records.Service](tx, records.Services, records.ServiceKey(cluster, name))
}

// validateServicePlacement checks a service's constraints and strategies.
func validateServicePlacement(sched types.SchedulingStrategy, cons []types.PlacementConstraint, strats []types.PlacementStrategy) error {
	if sched == types.SchedulingStrategyDaemon && len(strats) > 0 {
		return invalidParam("Placement strategies are not supported with the DAEMON scheduling strategy.")
	}
	td := &types.TaskDefinition{}
	_, err := launch.Request(td, scheduler.Demand{}, "", cons, strats, nil)
	return err
}

func (s *Server) createService(c *call, in *ecs.CreateServiceInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.ServiceName)
	if !records.NameRE.MatchString(name) {
		return nil, invalidParam("Service name can have up to 255 letters (uppercase and lowercase), numbers, hyphens and underscores; got %q.", name)
	}
	sched := in.SchedulingStrategy
	if sched == "" {
		sched = types.SchedulingStrategyReplica
	}
	if sched != types.SchedulingStrategyReplica && sched != types.SchedulingStrategyDaemon {
		return nil, invalidParam("schedulingStrategy must be REPLICA or DAEMON.")
	}
	desired := aws.ToInt32(in.DesiredCount)
	if sched == types.SchedulingStrategyDaemon && in.DesiredCount != nil {
		return nil, invalidParam("The daemon scheduling strategy does not support a desired count for services.")
	}
	if sched == types.SchedulingStrategyReplica && in.DesiredCount == nil {
		return nil, invalidParam("desiredCount is required for the REPLICA scheduling strategy.")
	}
	if desired < 0 {
		return nil, invalidParam("desiredCount must not be negative.")
	}
	switch in.LaunchType {
	case "", types.LaunchTypeEc2, types.LaunchTypeExternal:
	default:
		return nil, invalidParam("launchType %s is not supported by this endpoint: use EC2 or EXTERNAL.", in.LaunchType)
	}
	if in.DeploymentController != nil && in.DeploymentController.Type != types.DeploymentControllerTypeEcs {
		return nil, invalidParam("deploymentController type %s is not supported by this endpoint: only ECS.", in.DeploymentController.Type)
	}
	dc, err := deploymentConfig(sched, in.DeploymentConfiguration, nil)
	if err != nil {
		return nil, err
	}
	propagate, err := servicePropagateTags(in.PropagateTags, types.PropagateTagsNone)
	if err != nil {
		return nil, err
	}
	// ECS turns rebalancing on for services created without saying.
	rebalance, err := serviceRebalancing(in.AvailabilityZoneRebalancing, types.AvailabilityZoneRebalancingEnabled)
	if err != nil {
		return nil, err
	}
	if err := validateGracePeriod(in.HealthCheckGracePeriodSeconds); err != nil {
		return nil, err
	}
	if in.ClientToken != nil && (len(*in.ClientToken) == 0 || len(*in.ClientToken) > maxClientToken || !printableASCII(*in.ClientToken)) {
		return nil, invalidParam("clientToken must be 1 to %d ASCII characters.", maxClientToken)
	}
	if err := validateServicePlacement(sched, in.PlacementConstraints, in.PlacementStrategy); err != nil {
		return nil, err
	}
	// What the caller gave is stored and answered, as ECS does ([] for
	// none); the service controller applies ECS's default strategy for
	// services when it places and scales in.
	strats := in.PlacementStrategy
	out := &ecs.CreateServiceOutput{}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		p, err := s.taskParamsFor(tx, cluster, in.TaskDefinition, nil, nil, nil)
		if err != nil {
			return err
		}
		if err := validateNetwork("CreateService", in.NetworkConfiguration, p.TD); err != nil {
			return err
		}
		if err := s.validateLoadBalancers(tx, in.LoadBalancers, p.TD); err != nil {
			return err
		}
		if existing, ok, err := s.loadService(tx, cluster, name); err != nil {
			return err
		} else if ok && aws.ToString(existing.Service.Status) != "INACTIVE" {
			// A retry of the call that created it gets the service.
			if in.ClientToken != nil && existing.ClientToken == *in.ClientToken {
				out.Service = &existing.Service
				return nil
			}
			return invalidParam("Creation of service was not idempotent.")
		}
		launchType := in.LaunchType
		if launchType == "" {
			launchType = types.LaunchTypeEc2
		}
		svc := types.Service{
			ServiceArn:                    aws.String(s.arns.Service(cluster, name)),
			ServiceName:                   aws.String(name),
			ClusterArn:                    aws.String(s.arns.Cluster(cluster)),
			Status:                        aws.String("ACTIVE"),
			DesiredCount:                  desired,
			TaskDefinition:                p.TD.TaskDefinitionArn,
			LaunchType:                    launchType,
			SchedulingStrategy:            sched,
			DeploymentConfiguration:       dc,
			DeploymentController:          &types.DeploymentController{Type: types.DeploymentControllerTypeEcs},
			PlacementConstraints:          nonNilConstraints(in.PlacementConstraints),
			PlacementStrategy:             nonNilStrategies(strats),
			CreatedAt:                     aws.Time(c.now),
			CreatedBy:                     aws.String(s.arns.IAMUser(c.key.AccessKeyID)),
			Tags:                          in.Tags,
			PropagateTags:                 propagate,
			EnableECSManagedTags:          in.EnableECSManagedTags,
			AvailabilityZoneRebalancing:   rebalance,
			HealthCheckGracePeriodSeconds: in.HealthCheckGracePeriodSeconds,
			NetworkConfiguration:          in.NetworkConfiguration,
			Events:                        []types.ServiceEvent{},
			LoadBalancers:                 nonNilLoadBalancers(in.LoadBalancers),
			ServiceRegistries:             []types.ServiceRegistry{},
		}
		rec := &records.Service{Service: svc, Cluster: cluster, ClientToken: aws.ToString(in.ClientToken)}
		if err := rec.StartDeployment(aws.ToString(p.TD.TaskDefinitionArn), c.now); err != nil {
			return err
		}
		if err := records.Put(tx, rec); err != nil {
			return err
		}
		out.Service = &rec.Service
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
	return out, nil
}

func nonNilConstraints(cs []types.PlacementConstraint) []types.PlacementConstraint {
	if cs == nil {
		return []types.PlacementConstraint{}
	}
	return cs
}

func nonNilStrategies(ss []types.PlacementStrategy) []types.PlacementStrategy {
	if ss == nil {
		return []types.PlacementStrategy{}
	}
	return ss
}

// deploymentConfig fills ECS's defaults (REPLICA 100/200, DAEMON 0/100) over
// have and validates the percentages.
func deploymentConfig(sched types.SchedulingStrategy, in, have *types.DeploymentConfiguration) (*types.DeploymentConfiguration, error) {
	dc := &types.DeploymentConfiguration{MinimumHealthyPercent: aws.Int32(100), MaximumPercent: aws.Int32(200),
		DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{}, Strategy: types.DeploymentStrategyRolling}
	if sched == types.SchedulingStrategyDaemon {
		dc.MinimumHealthyPercent, dc.MaximumPercent = aws.Int32(0), aws.Int32(100)
	}
	if have != nil {
		cp := *have
		dc = &cp
	}
	if err := refuseDeploymentStrategy(in); err != nil {
		return nil, err
	}
	if in != nil {
		if in.MinimumHealthyPercent != nil {
			dc.MinimumHealthyPercent = in.MinimumHealthyPercent
		}
		if in.MaximumPercent != nil {
			dc.MaximumPercent = in.MaximumPercent
		}
		if in.DeploymentCircuitBreaker != nil {
			dc.DeploymentCircuitBreaker = in.DeploymentCircuitBreaker
		}
	}
	minP, maxP := aws.ToInt32(dc.MinimumHealthyPercent), aws.ToInt32(dc.MaximumPercent)
	if minP < 0 || minP > 100 {
		return nil, invalidParam("minimumHealthyPercent must be between 0 and 100.")
	}
	if maxP < 100 || maxP > 200 && sched == types.SchedulingStrategyReplica || sched == types.SchedulingStrategyDaemon && maxP != 100 {
		return nil, invalidParam("maximumPercent must be between 100 and 200 (100 for DAEMON services).")
	}
	return dc, nil
}

func (s *Server) updateService(c *call, in *ecs.UpdateServiceInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if in.DesiredCount != nil && *in.DesiredCount < 0 {
		return nil, invalidParam("desiredCount must not be negative.")
	}
	out := &ecs.UpdateServiceOutput{}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		rec, ok, err := s.loadService(tx, cluster, aws.ToString(in.Service))
		if err != nil {
			return err
		}
		if !ok {
			return clientErr("ServiceNotFoundException", "Service not found.")
		}
		svc := &rec.Service
		if aws.ToString(svc.Status) != "ACTIVE" {
			return clientErr("ServiceNotActiveException", "Service was not ACTIVE.")
		}
		if in.DesiredCount != nil {
			if svc.SchedulingStrategy == types.SchedulingStrategyDaemon {
				return invalidParam("The daemon scheduling strategy does not support a desired count for services.")
			}
			rec.SetDesiredCount(*in.DesiredCount)
		}
		dc, err := deploymentConfig(svc.SchedulingStrategy, in.DeploymentConfiguration, svc.DeploymentConfiguration)
		if err != nil {
			return err
		}
		svc.DeploymentConfiguration = dc
		if svc.PropagateTags, err = servicePropagateTags(in.PropagateTags, svc.PropagateTags); err != nil {
			return err
		}
		if in.EnableECSManagedTags != nil {
			svc.EnableECSManagedTags = *in.EnableECSManagedTags
		}
		if svc.AvailabilityZoneRebalancing, err = serviceRebalancing(in.AvailabilityZoneRebalancing, svc.AvailabilityZoneRebalancing); err != nil {
			return err
		}
		if in.HealthCheckGracePeriodSeconds != nil {
			if err := validateGracePeriod(in.HealthCheckGracePeriodSeconds); err != nil {
				return err
			}
			svc.HealthCheckGracePeriodSeconds = in.HealthCheckGracePeriodSeconds
		}
		if in.PlacementConstraints != nil || in.PlacementStrategy != nil {
			cons, strats := svc.PlacementConstraints, svc.PlacementStrategy
			if in.PlacementConstraints != nil {
				cons = in.PlacementConstraints
			}
			if in.PlacementStrategy != nil {
				strats = in.PlacementStrategy
			}
			if err := validateServicePlacement(svc.SchedulingStrategy, cons, strats); err != nil {
				return err
			}
			svc.PlacementConstraints, svc.PlacementStrategy = nonNilConstraints(cons), nonNilStrategies(strats)
		}
		tdArn := aws.ToString(svc.TaskDefinition)
		if in.TaskDefinition != nil {
			p, err := s.taskParamsFor(tx, cluster, in.TaskDefinition, nil, nil, nil)
			if err != nil {
				return err
			}
			tdArn = aws.ToString(p.TD.TaskDefinitionArn)
		}
		if in.NetworkConfiguration != nil {
			svc.NetworkConfiguration = in.NetworkConfiguration
		}
		lbsChanged := in.LoadBalancers != nil && !slices.EqualFunc(in.LoadBalancers, svc.LoadBalancers, sameLoadBalancer)
		if lbsChanged {
			svc.LoadBalancers = nonNilLoadBalancers(in.LoadBalancers)
		}
		if in.TaskDefinition != nil || in.NetworkConfiguration != nil || in.LoadBalancers != nil {
			td, err := s.findTaskDefinition(tx, tdArn)
			if err != nil {
				return err
			}
			if err := validateNetwork("UpdateService", svc.NetworkConfiguration, &td.TaskDefinition); err != nil {
				return err
			}
			if err := s.validateLoadBalancers(tx, svc.LoadBalancers, &td.TaskDefinition); err != nil {
				return err
			}
		}
		// A new network or load balancer configuration, like a new
		// revision, is deployed: new tasks register, old ones drain.
		if tdArn != aws.ToString(svc.TaskDefinition) || in.ForceNewDeployment || in.NetworkConfiguration != nil || lbsChanged {
			if err := rec.StartDeployment(tdArn, c.now); err != nil {
				return err
			}
		}
		svc.Deployments[0].DesiredCount = svc.DesiredCount
		if err := records.Put(tx, rec); err != nil {
			return err
		}
		out.Service = svc
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
	return out, nil
}

func (s *Server) deleteService(c *call, in *ecs.DeleteServiceInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	out := &ecs.DeleteServiceOutput{}
	err = s.opts.Store.Update(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		rec, ok, err := s.loadService(tx, cluster, aws.ToString(in.Service))
		if err != nil {
			return err
		}
		if !ok || aws.ToString(rec.Service.Status) == "INACTIVE" {
			return clientErr("ServiceNotFoundException", "Service not found.")
		}
		svc := &rec.Service
		if aws.ToString(svc.Status) == "DRAINING" {
			out.Service = svc
			return nil
		}
		if !aws.ToBool(in.Force) && svc.SchedulingStrategy == types.SchedulingStrategyReplica {
			n, err := s.countServiceTasks(tx, rec)
			if err != nil {
				return err
			}
			if svc.DesiredCount > 0 || n > 0 {
				return invalidParam("The service cannot be stopped while it is scaled above 0.")
			}
		}
		svc.DesiredCount = 0
		svc.Status = aws.String("DRAINING")
		for i := range svc.Deployments {
			svc.Deployments[i].DesiredCount = 0
		}
		if err := records.Put(tx, rec); err != nil {
			return err
		}
		out.Service = svc
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.wake = true
	return out, nil
}

// countServiceTasks counts the service's unstopped tasks.
func (s *Server) countServiceTasks(tx store.Tx, rec *records.Service) (int, error) {
	n := 0
	group := "service:" + aws.ToString(rec.Service.ServiceName)
	err := records.Each(tx, records.Tasks, rec.Cluster+"/", func(t *records.Task) error {
		if aws.ToString(t.Task.Group) == group && t.Unstopped() {
			n++
		}
		return nil
	})
	return n, err
}

// withCounts fills the service's and its deployments' running and pending
// counts from its tasks.
func (s *Server) withCounts(tx store.Tx, rec *records.Service) (types.Service, error) {
	svc := rec.Service
	deps := make([]types.Deployment, len(svc.Deployments))
	copy(deps, svc.Deployments)
	svc.Deployments = deps
	svc.RunningCount, svc.PendingCount = 0, 0
	for i := range deps {
		deps[i].RunningCount, deps[i].PendingCount = 0, 0
	}
	group := "service:" + aws.ToString(svc.ServiceName)
	err := records.Each(tx, records.Tasks, rec.Cluster+"/", func(t *records.Task) error {
		if aws.ToString(t.Task.Group) != group || aws.ToString(t.Task.DesiredStatus) == "STOPPED" {
			return nil
		}
		running := aws.ToString(t.Task.LastStatus) == "RUNNING"
		pending := !running && aws.ToString(t.Task.LastStatus) != "STOPPED"
		if running {
			svc.RunningCount++
		} else if pending {
			svc.PendingCount++
		}
		for i := range deps {
			if aws.ToString(deps[i].Id) == aws.ToString(t.Task.StartedBy) {
				if running {
					deps[i].RunningCount++
				} else if pending {
					deps[i].PendingCount++
				}
			}
		}
		return nil
	})
	return svc, err
}

func (s *Server) describeServices(c *call, in *ecs.DescribeServicesInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	if len(in.Services) == 0 || len(in.Services) > 10 {
		return nil, invalidParam("services must have between 1 and 10 items.")
	}
	withTags := slices.Contains(in.Include, types.ServiceFieldTags)
	out := &ecs.DescribeServicesOutput{Services: []types.Service{}}
	err = s.opts.Store.View(func(tx store.Tx) error {
		if _, err := activeCluster(tx, cluster); err != nil {
			return err
		}
		// ECS names a missing service by the ARN it would have.
		failureArn := func(ref string) string { return s.arns.Service(cluster, arn.ResourceID(ref)) }
		out.Failures, err = lookupEach(in.Services, func(ref string) (*records.Service, bool, error) {
			return s.loadService(tx, cluster, ref)
		}, failureArn, func(rec *records.Service) error {
			svc, err := s.withCounts(tx, rec)
			if err != nil {
				return err
			}
			if !withTags {
				svc.Tags = nil
			}
			out.Services = append(out.Services, svc)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) listServices(c *call, in *ecs.ListServicesInput) (smithy.Serializable, error) {
	cluster, err := s.clusterName(in.Cluster)
	if err != nil {
		return nil, err
	}
	switch in.ResourceManagementType {
	case "", types.ResourceManagementTypeCustomer, types.ResourceManagementTypeEcs:
	default:
		return nil, invalidParam("resourceManagementType must be CUSTOMER or ECS.")
	}
	page, next, err := s.listPage(in.MaxResults, in.NextToken, func(tx store.Tx) ([]string, error) {
		if _, err := activeCluster(tx, cluster); err != nil {
			return nil, err
		}
		var arns []string
		err := records.Each(tx, records.Services, cluster+"/", func(rec *records.Service) error {
			svc := rec.Service
			switch {
			// Every service is its creator's: none is managed by ECS.
			case in.ResourceManagementType == types.ResourceManagementTypeEcs,
				aws.ToString(svc.Status) == "INACTIVE",
				in.LaunchType != "" && svc.LaunchType != in.LaunchType,
				in.SchedulingStrategy != "" && svc.SchedulingStrategy != in.SchedulingStrategy:
				return nil
			}
			arns = append(arns, aws.ToString(svc.ServiceArn))
			return nil
		})
		sort.Strings(arns)
		return arns, err
	})
	if err != nil {
		return nil, err
	}
	return &ecs.ListServicesOutput{ServiceArns: page, NextToken: next}, nil
}

// refuseDeploymentStrategy names the deployment configuration members of
// the blue/green, linear and canary strategies and of alarm-based rollback,
// which the service controller does not implement: it rolls.
func refuseDeploymentStrategy(dc *types.DeploymentConfiguration) error {
	if dc == nil {
		return nil
	}
	member := ""
	switch {
	case dc.Alarms != nil && (dc.Alarms.Enable || dc.Alarms.Rollback || len(dc.Alarms.AlarmNames) > 0):
		member = "alarms"
	case aws.ToInt32(dc.BakeTimeInMinutes) != 0:
		member = "bakeTimeInMinutes"
	case dc.CanaryConfiguration != nil:
		member = "canaryConfiguration"
	case dc.EarlySuccessCriteria != nil:
		member = "earlySuccessCriteria"
	case len(dc.LifecycleHooks) > 0:
		member = "lifecycleHooks"
	case dc.LinearConfiguration != nil:
		member = "linearConfiguration"
	case dc.Strategy != "" && dc.Strategy != types.DeploymentStrategyRolling:
		member = "strategy"
	default:
		return nil
	}
	return refuseNested("UpdateService", deploymentMembers(), "deploymentConfiguration."+member)
}

// servicePropagateTags validates a service's propagateTags; empty keeps
// have.
func servicePropagateTags(p, have types.PropagateTags) (types.PropagateTags, error) {
	switch p {
	case "":
		return have, nil
	case types.PropagateTagsNone, types.PropagateTagsTaskDefinition, types.PropagateTagsService:
		return p, nil
	}
	return "", invalidParam("propagateTags must be TASK_DEFINITION, SERVICE or NONE, got %q.", p)
}

// serviceRebalancing validates availabilityZoneRebalancing; empty keeps
// have.
func serviceRebalancing(v, have types.AvailabilityZoneRebalancing) (types.AvailabilityZoneRebalancing, error) {
	switch v {
	case "":
		return have, nil
	case types.AvailabilityZoneRebalancingEnabled, types.AvailabilityZoneRebalancingDisabled:
		return v, nil
	}
	return "", invalidParam("availabilityZoneRebalancing must be ENABLED or DISABLED, got %q.", v)
}

// validateGracePeriod checks healthCheckGracePeriodSeconds (ECS's range).
func validateGracePeriod(v *int32) error {
	if v != nil && *v < 0 {
		return invalidParam("healthCheckGracePeriodSeconds must be between 0 and 2147483647.")
	}
	return nil
}
