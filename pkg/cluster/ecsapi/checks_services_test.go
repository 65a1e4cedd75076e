package ecsapi

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// updateService updates service svc of c (after edit) and returns it.
func (e *env) updateService(edit func(*ecs.UpdateServiceInput)) types.Service {
	e.t.Helper()
	in := &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("svc")}
	edit(in)
	out, err := e.c.UpdateService(e.ctx, in)
	e.ok(err, "UpdateService")
	return *out.Service
}

// deploymentRefusals proves the refused deployment configuration members
// of CreateService and UpdateService.
func deploymentRefusals(checks map[string]func(*env)) {
	cases := map[string]types.DeploymentConfiguration{
		"alarms":               {Alarms: &types.DeploymentAlarms{Enable: true, AlarmNames: []string{"a"}}},
		"bakeTimeInMinutes":    {BakeTimeInMinutes: aws.Int32(5)},
		"canaryConfiguration":  {CanaryConfiguration: &types.CanaryConfiguration{CanaryPercent: aws.Float64(10)}},
		"earlySuccessCriteria": {EarlySuccessCriteria: &types.DeploymentEarlySuccessCriteria{}},
		"lifecycleHooks":       {LifecycleHooks: []types.DeploymentLifecycleHook{{HookTargetArn: aws.String("arn:aws:lambda:x")}}},
		"linearConfiguration":  {LinearConfiguration: &types.LinearConfiguration{StepPercent: aws.Float64(10)}},
		"strategy":             {Strategy: types.DeploymentStrategyBlueGreen},
	}
	for member, dc := range cases {
		name := "deploymentConfiguration." + member
		checks["CreateService."+name] = func(e *env) {
			e.std()
			_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("svc"),
				TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0), DeploymentConfiguration: &dc})
			e.refusedNaming(err, name)
		}
		checks["UpdateService."+name] = func(e *env) {
			e.std()
			e.service("svc", nil)
			_, err := e.c.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("svc"), DeploymentConfiguration: &dc})
			e.refusedNaming(err, name)
		}
	}
}

func serviceChecks() map[string]func(*env) {
	memberOfB := []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:zone == b")}}
	binpack := []types.PlacementStrategy{{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("cpu")}}
	checks := map[string]func(*env){
		"CreateService.cluster": func(e *env) {
			e.std()
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: cluster, ServiceName: aws.String("svc"),
					TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0)})
				return err
			})
		},
		"CreateService.serviceName": func(e *env) {
			e.std()
			e.service("svc", nil)
			wantEq(e, "serviceArn", aws.ToString(e.describeService("svc").ServiceArn), "arn:aws:ecs:us-test-1:123456789012:service/c/svc")
		},
		"CreateService.taskDefinition": func(e *env) {
			e.std()
			e.taskDef("web", nil)
			e.service("svc", func(in *ecs.CreateServiceInput) { in.TaskDefinition = aws.String("web:1") })
			wantEq(e, "taskDefinition", arnSuffix(aws.ToString(e.describeService("svc").TaskDefinition)), "web:1")
		},
		"CreateService.desiredCount": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.DesiredCount = aws.Int32(3) })
			wantEq(e, "desiredCount", e.describeService("svc").DesiredCount, int32(3))
		},
		"CreateService.schedulingStrategy": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) {
				in.SchedulingStrategy, in.DesiredCount = types.SchedulingStrategyDaemon, nil
			})
			wantEq(e, "schedulingStrategy", e.describeService("svc").SchedulingStrategy, types.SchedulingStrategyDaemon)
		},
		"CreateService.placementConstraints": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.PlacementConstraints = memberOfB })
			wantEq(e, "constraint", aws.ToString(e.describeService("svc").PlacementConstraints[0].Expression), "attribute:zone == b")
		},
		"CreateService.placementStrategy": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.PlacementStrategy = binpack })
			if got := e.describeService("svc").PlacementStrategy; len(got) != 1 || got[0].Type != types.PlacementStrategyTypeBinpack {
				e.t.Fatalf("placementStrategy read back %+v", got)
			}
		},
		"CreateService.tags": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) {
				in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}
			})
			wantEq(e, "tag k", tagMap(e.describeService("svc", types.ServiceFieldTags).Tags)["k"], "v")
		},
		"CreateService.deploymentConfiguration": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) {
				in.DeploymentConfiguration = &types.DeploymentConfiguration{MinimumHealthyPercent: aws.Int32(50), MaximumPercent: aws.Int32(150),
					DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}}
			})
			dc := e.describeService("svc").DeploymentConfiguration
			if aws.ToInt32(dc.MinimumHealthyPercent) != 50 || aws.ToInt32(dc.MaximumPercent) != 150 || !dc.DeploymentCircuitBreaker.Rollback {
				e.t.Fatalf("deploymentConfiguration read back %+v", dc)
			}
		},
		"CreateService.deploymentController": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) {
				in.DeploymentController = &types.DeploymentController{Type: types.DeploymentControllerTypeEcs}
			})
			wantEq(e, "deploymentController", e.describeService("svc").DeploymentController.Type, types.DeploymentControllerTypeEcs)
			_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("cd"),
				TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0), DeploymentController: &types.DeploymentController{Type: types.DeploymentControllerTypeCodeDeploy}})
			e.refusedNaming(err, "deploymentController")
		},
		"CreateService.launchType": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.LaunchType = types.LaunchTypeExternal })
			wantEq(e, "launchType", e.describeService("svc").LaunchType, types.LaunchTypeExternal)
			_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("f"),
				TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0), LaunchType: types.LaunchTypeFargate})
			e.refusedNaming(err, "launchType")
		},
		"UpdateService.cluster": func(e *env) {
			e.std()
			e.service("svc", nil)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: cluster, Service: aws.String("svc")})
				return err
			})
		},
		"UpdateService.service": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.service("other", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.DesiredCount = aws.Int32(2) })
			wantEq(e, "svc desiredCount", e.describeService("svc").DesiredCount, int32(2))
			wantEq(e, "other desiredCount", e.describeService("other").DesiredCount, int32(0))
		},
		"UpdateService.taskDefinition": func(e *env) {
			e.std()
			e.service("svc", nil)
			arn := e.taskDef("web", nil)
			svc := e.updateService(func(in *ecs.UpdateServiceInput) { in.TaskDefinition = aws.String(arn) })
			wantEq(e, "taskDefinition", aws.ToString(svc.TaskDefinition), arn)
			wantEq(e, "deployments", len(e.describeService("svc").Deployments), 2)
		},
		"UpdateService.desiredCount": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.DesiredCount = aws.Int32(4) })
			wantEq(e, "desiredCount", e.describeService("svc").DesiredCount, int32(4))
		},
		"UpdateService.placementConstraints": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.PlacementConstraints = memberOfB })
			wantEq(e, "constraints", len(e.describeService("svc").PlacementConstraints), 1)
		},
		"UpdateService.placementStrategy": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.PlacementStrategy = binpack })
			wantEq(e, "strategy", e.describeService("svc").PlacementStrategy[0].Type, types.PlacementStrategyTypeBinpack)
		},
		"UpdateService.forceNewDeployment": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.ForceNewDeployment = true })
			wantEq(e, "deployments", len(e.describeService("svc").Deployments), 2)
		},
		"UpdateService.deploymentConfiguration": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) {
				in.DeploymentConfiguration = &types.DeploymentConfiguration{MinimumHealthyPercent: aws.Int32(0)}
			})
			dc := e.describeService("svc").DeploymentConfiguration
			wantEq(e, "minimumHealthyPercent", aws.ToInt32(dc.MinimumHealthyPercent), int32(0))
			wantEq(e, "maximumPercent kept", aws.ToInt32(dc.MaximumPercent), int32(200))
		},
		"DeleteService.cluster": func(e *env) {
			e.std()
			e.service("svc", nil)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: cluster, Service: aws.String("svc")})
				return err
			})
		},
		"DeleteService.service": func(e *env) {
			e.std()
			e.service("svc", nil)
			_, err := e.c.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: aws.String("c"), Service: aws.String("svc")})
			e.ok(err, "DeleteService")
			wantEq(e, "status", aws.ToString(e.describeService("svc").Status), "DRAINING")
		},
		"DeleteService.force": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.DesiredCount = aws.Int32(1) })
			_, err := e.c.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: aws.String("c"), Service: aws.String("svc")})
			e.fails(err, "InvalidParameterException", "scaled above 0")
			_, err = e.c.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: aws.String("c"), Service: aws.String("svc"), Force: aws.Bool(true)})
			e.ok(err, "forced DeleteService")
		},
		"DescribeServices.cluster": func(e *env) {
			e.std()
			e.service("svc", nil)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.DescribeServices(e.ctx, &ecs.DescribeServicesInput{Cluster: cluster, Services: []string{"svc"}})
				return err
			})
		},
		"DescribeServices.services": func(e *env) {
			e.std()
			e.service("svc", nil)
			out, err := e.c.DescribeServices(e.ctx, &ecs.DescribeServicesInput{Cluster: aws.String("c"), Services: []string{"svc", "nope"}})
			e.ok(err, "DescribeServices")
			if len(out.Services) != 1 || len(out.Failures) != 1 {
				e.t.Fatalf("[svc nope] = %+v", out)
			}
		},
		"DescribeServices.include": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) {
				in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}
			})
			if tags := e.describeService("svc").Tags; tags != nil {
				e.t.Fatalf("tags without include: %v", tags)
			}
			wantEq(e, "tags with TAGS", len(e.describeService("svc", types.ServiceFieldTags).Tags), 1)
		},
		"ListServices.cluster": func(e *env) {
			e.std()
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.ListServices(e.ctx, &ecs.ListServicesInput{Cluster: cluster})
				return err
			})
		},
		"ListServices.launchType": func(e *env) {
			e.std()
			e.service("a", nil)
			e.service("b", func(in *ecs.CreateServiceInput) { in.LaunchType = types.LaunchTypeExternal })
			e.listServices(&ecs.ListServicesInput{LaunchType: types.LaunchTypeExternal}, "b")
		},
		"ListServices.schedulingStrategy": func(e *env) {
			e.std()
			e.service("a", nil)
			e.service("b", func(in *ecs.CreateServiceInput) {
				in.SchedulingStrategy, in.DesiredCount = types.SchedulingStrategyDaemon, nil
			})
			e.listServices(&ecs.ListServicesInput{SchedulingStrategy: types.SchedulingStrategyDaemon}, "b")
		},
		"ListServices.resourceManagementType": func(e *env) {
			e.std()
			e.service("a", nil)
			e.listServices(&ecs.ListServicesInput{ResourceManagementType: types.ResourceManagementTypeCustomer}, "a")
			e.listServices(&ecs.ListServicesInput{ResourceManagementType: types.ResourceManagementTypeEcs})
		},
		"ListServices.maxResults": checkListServicesPaging,
		"ListServices.nextToken":  checkListServicesPaging,
	}
	deploymentRefusals(checks)
	return checks
}

// listServices lists the services of c with in's filters and expects
// exactly the names want.
func (e *env) listServices(in *ecs.ListServicesInput, want ...string) {
	e.t.Helper()
	in.Cluster = aws.String("c")
	out, err := e.c.ListServices(e.ctx, in)
	e.ok(err, "ListServices")
	var got []string
	for _, a := range out.ServiceArns {
		got = append(got, arnSuffix(a))
	}
	if !slices.Equal(got, want) {
		e.t.Fatalf("ListServices %+v = %v, want %v", in, got, want)
	}
}

func checkListServicesPaging(e *env) {
	e.std()
	e.service("a", nil)
	e.service("b", nil)
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListServices(e.ctx, &ecs.ListServicesInput{Cluster: aws.String("c"), MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		return out.ServiceArns, out.NextToken, nil
	})
}
