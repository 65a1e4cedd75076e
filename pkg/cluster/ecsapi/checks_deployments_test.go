package ecsapi

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// twoDeployments creates service svc and rolls it to web:2, and returns
// the ARNs of its two service deployments, newest first.
func (e *env) twoDeployments() []string {
	e.t.Helper()
	e.std()
	e.service("svc", nil)
	e.taskDef("web", nil)
	e.updateService(func(in *ecs.UpdateServiceInput) { in.TaskDefinition = aws.String("web:2") })
	out, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("svc")})
	e.ok(err, "ListServiceDeployments")
	var arns []string
	for _, b := range out.ServiceDeployments {
		arns = append(arns, aws.ToString(b.ServiceDeploymentArn))
	}
	if len(arns) != 2 {
		e.t.Fatalf("service deployments %v, want 2", arns)
	}
	return arns
}

// completePrimary marks svc's PRIMARY deployment COMPLETED, as the service
// controller does when it reaches its steady state.
func (e *env) completePrimary() {
	e.t.Helper()
	err := e.s.opts.Store.Update(func(tx store.Tx) error {
		rec, _, err := records.Get[records.Service](tx, records.Services, records.ServiceKey("c", "svc"))
		if err != nil {
			return err
		}
		rec.Service.Deployments[0].RolloutState = types.DeploymentRolloutStateCompleted
		rec.LastCompleted = aws.ToString(rec.Service.Deployments[0].TaskDefinition)
		return records.Put(tx, rec)
	})
	e.ok(err, "complete the PRIMARY deployment")
}

func deploymentChecks() map[string]func(*env) {
	insights := func(v string) []types.ClusterSetting {
		return []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String(v)}}
	}
	return map[string]func(*env){
		"CreateService.availabilityZoneRebalancing": func(e *env) {
			e.std()
			e.service("a", nil)
			e.service("b", func(in *ecs.CreateServiceInput) {
				in.AvailabilityZoneRebalancing = types.AvailabilityZoneRebalancingDisabled
			})
			wantEq(e, "default", e.describeService("a").AvailabilityZoneRebalancing, types.AvailabilityZoneRebalancingEnabled)
			wantEq(e, "DISABLED", e.describeService("b").AvailabilityZoneRebalancing, types.AvailabilityZoneRebalancingDisabled)
		},
		"UpdateService.availabilityZoneRebalancing": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) {
				in.AvailabilityZoneRebalancing = types.AvailabilityZoneRebalancingDisabled
			})
			wantEq(e, "after update", e.describeService("svc").AvailabilityZoneRebalancing, types.AvailabilityZoneRebalancingDisabled)
		},
		"CreateService.healthCheckGracePeriodSeconds": func(e *env) {
			e.std()
			e.service("svc", func(in *ecs.CreateServiceInput) { in.HealthCheckGracePeriodSeconds = aws.Int32(60) })
			wantEq(e, "grace", aws.ToInt32(e.describeService("svc").HealthCheckGracePeriodSeconds), int32(60))
			rec := &records.Service{Service: types.Service{HealthCheckGracePeriodSeconds: aws.Int32(60)}}
			now := time.Now()
			task := &records.Task{Task: types.Task{StartedAt: aws.Time(now.Add(-30 * time.Second))}}
			if !rec.InHealthGrace(task, now) || rec.InHealthGrace(task, now.Add(31*time.Second)) {
				e.t.Fatal("a task 30s old is not within a 60s grace period, or one 61s old still is")
			}
		},
		"UpdateService.healthCheckGracePeriodSeconds": func(e *env) {
			e.std()
			e.service("svc", nil)
			e.updateService(func(in *ecs.UpdateServiceInput) { in.HealthCheckGracePeriodSeconds = aws.Int32(30) })
			wantEq(e, "grace", aws.ToInt32(e.describeService("svc").HealthCheckGracePeriodSeconds), int32(30))
			_, err := e.c.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("svc"), HealthCheckGracePeriodSeconds: aws.Int32(-1)})
			e.refusedNaming(err, "healthCheckGracePeriodSeconds")
		},
		"CreateService.clientToken": func(e *env) {
			e.std()
			first := e.service("svc", func(in *ecs.CreateServiceInput) { in.ClientToken = aws.String("t1") })
			again := e.service("svc", func(in *ecs.CreateServiceInput) { in.ClientToken = aws.String("t1") })
			wantEq(e, "same service", aws.ToTime(again.CreatedAt), aws.ToTime(first.CreatedAt))
			_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("svc"),
				TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0), ClientToken: aws.String("t2")})
			e.fails(err, "InvalidParameterException", "not idempotent")
		},
		"DeleteTaskDefinitions.taskDefinitions": func(e *env) {
			e.std()
			e.taskDef("web", nil)
			_, err := e.c.DeregisterTaskDefinition(e.ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("web:2")})
			e.ok(err, "DeregisterTaskDefinition")
			out, err := e.c.DeleteTaskDefinitions(e.ctx, &ecs.DeleteTaskDefinitionsInput{TaskDefinitions: []string{"web:2", "web:1", "web:9"}})
			e.ok(err, "DeleteTaskDefinitions")
			if len(out.TaskDefinitions) != 1 || out.TaskDefinitions[0].Status != types.TaskDefinitionStatusDeleteInProgress || len(out.Failures) != 2 {
				e.t.Fatalf("delete [web:2 (INACTIVE) web:1 (ACTIVE) web:9 (none)]: %+v", out)
			}
			_, err = e.c.DescribeTaskDefinition(e.ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web:2")})
			e.fails(err, "ClientException", "")
		},
		"UpdateCluster.cluster": func(e *env) {
			e.cluster("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.UpdateCluster(e.ctx, &ecs.UpdateClusterInput{Cluster: cluster, Settings: insights("enabled")})
				return err
			})
		},
		"UpdateCluster.settings": func(e *env) {
			e.cluster("c")
			_, err := e.c.UpdateCluster(e.ctx, &ecs.UpdateClusterInput{Cluster: aws.String("c"), Settings: insights("enhanced")})
			e.ok(err, "UpdateCluster")
			wantEq(e, "containerInsights", settingValue(e.describeCluster("c", types.ClusterFieldSettings).Settings, types.ClusterSettingNameContainerInsights), "enhanced")
			_, err = e.c.UpdateCluster(e.ctx, &ecs.UpdateClusterInput{Cluster: aws.String("c"), Settings: insights("on")})
			e.refusedNaming(err, "settings")
		},
		"UpdateClusterSettings.cluster": func(e *env) {
			e.cluster("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.UpdateClusterSettings(e.ctx, &ecs.UpdateClusterSettingsInput{Cluster: cluster, Settings: insights("enabled")})
				return err
			})
		},
		"UpdateClusterSettings.settings": func(e *env) {
			e.cluster("c")
			out, err := e.c.UpdateClusterSettings(e.ctx, &ecs.UpdateClusterSettingsInput{Cluster: aws.String("c"), Settings: insights("enabled")})
			e.ok(err, "UpdateClusterSettings")
			wantEq(e, "answered", settingValue(out.Cluster.Settings, types.ClusterSettingNameContainerInsights), "enabled")
			_, err = e.c.UpdateClusterSettings(e.ctx, &ecs.UpdateClusterSettingsInput{Cluster: aws.String("c"), Settings: insights("disabled")})
			e.ok(err, "UpdateClusterSettings")
			wantEq(e, "read back", settingValue(e.describeCluster("c", types.ClusterFieldSettings).Settings, types.ClusterSettingNameContainerInsights), "disabled")
		},
		"PutClusterCapacityProviders.cluster": func(e *env) {
			e.cluster("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.PutClusterCapacityProviders(e.ctx, &ecs.PutClusterCapacityProvidersInput{Cluster: cluster,
					CapacityProviders: []string{}, DefaultCapacityProviderStrategy: []types.CapacityProviderStrategyItem{}})
				return err
			})
		},
		"DescribeServiceDeployments.serviceDeploymentArns": func(e *env) {
			arns := e.twoDeployments()
			out, err := e.c.DescribeServiceDeployments(e.ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: append(arns, arns[0]+"0")})
			e.ok(err, "DescribeServiceDeployments")
			if len(out.ServiceDeployments) != 2 || len(out.Failures) != 1 {
				e.t.Fatalf("describe 2 + 1 unknown: %+v", out)
			}
			newest, older := out.ServiceDeployments[0], out.ServiceDeployments[1]
			wantEq(e, "newest status", newest.Status, types.ServiceDeploymentStatusInProgress)
			wantEq(e, "replaced status", older.Status, types.ServiceDeploymentStatusStopped)
			wantEq(e, "source of the newest", aws.ToString(newest.SourceServiceRevisions[0].Arn), aws.ToString(older.TargetServiceRevision.Arn))
		},
		"ListServiceDeployments.cluster": func(e *env) {
			e.twoDeployments()
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: cluster, Service: aws.String("svc")})
				return err
			})
		},
		"ListServiceDeployments.service": func(e *env) {
			e.twoDeployments()
			_, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("nope")})
			e.fails(err, "ServiceNotFoundException", "")
		},
		"ListServiceDeployments.status": func(e *env) {
			arns := e.twoDeployments()
			out, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("svc"),
				Status: []types.ServiceDeploymentStatus{types.ServiceDeploymentStatusStopped}})
			e.ok(err, "ListServiceDeployments")
			if len(out.ServiceDeployments) != 1 || aws.ToString(out.ServiceDeployments[0].ServiceDeploymentArn) != arns[1] {
				e.t.Fatalf("STOPPED: %+v, want %s", out.ServiceDeployments, arns[1])
			}
		},
		"ListServiceDeployments.createdAt": func(e *env) {
			e.twoDeployments()
			list := func(ca types.CreatedAt) int {
				out, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("svc"), CreatedAt: &ca})
				e.ok(err, "ListServiceDeployments")
				return len(out.ServiceDeployments)
			}
			wantEq(e, "created after an hour ago", list(types.CreatedAt{After: aws.Time(time.Now().Add(-time.Hour))}), 2)
			wantEq(e, "created before an hour ago", list(types.CreatedAt{Before: aws.Time(time.Now().Add(-time.Hour))}), 0)
		},
		"ListServiceDeployments.maxResults": checkListDeploymentsPaging,
		"ListServiceDeployments.nextToken":  checkListDeploymentsPaging,
		"DescribeServiceRevisions.serviceRevisionArns": func(e *env) {
			arns := e.twoDeployments()
			d, err := e.c.DescribeServiceDeployments(e.ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: arns[:1]})
			e.ok(err, "DescribeServiceDeployments")
			rev := aws.ToString(d.ServiceDeployments[0].TargetServiceRevision.Arn)
			out, err := e.c.DescribeServiceRevisions(e.ctx, &ecs.DescribeServiceRevisionsInput{ServiceRevisionArns: []string{rev}})
			e.ok(err, "DescribeServiceRevisions")
			if len(out.ServiceRevisions) != 1 || arnSuffix(aws.ToString(out.ServiceRevisions[0].TaskDefinition)) != "web:2" ||
				aws.ToString(out.ServiceRevisions[0].ContainerImages[0].Image) != "busybox" {
				e.t.Fatalf("revision %s: %+v", rev, out)
			}
		},
		"StopServiceDeployment.serviceDeploymentArn": checkStopDeployment,
		"StopServiceDeployment.stopType":             checkStopDeployment,
	}
}

func checkListDeploymentsPaging(e *env) {
	e.twoDeployments()
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("svc"), MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		var arns []string
		for _, b := range out.ServiceDeployments {
			arns = append(arns, aws.ToString(b.ServiceDeploymentArn))
		}
		return arns, out.NextToken, nil
	})
}

func checkStopDeployment(e *env) {
	e.std()
	e.service("svc", nil)
	e.completePrimary()
	e.taskDef("web", nil)
	e.updateService(func(in *ecs.UpdateServiceInput) { in.TaskDefinition = aws.String("web:2") })
	out, err := e.c.ListServiceDeployments(e.ctx, &ecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("svc")})
	e.ok(err, "ListServiceDeployments")
	rolling := aws.ToString(out.ServiceDeployments[0].ServiceDeploymentArn)
	_, err = e.c.StopServiceDeployment(e.ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(rolling), StopType: types.StopServiceDeploymentStopTypeAbort})
	e.refusedNaming(err, "stopType")
	_, err = e.c.StopServiceDeployment(e.ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(rolling), StopType: types.StopServiceDeploymentStopTypeRollback})
	e.ok(err, "StopServiceDeployment")
	wantEq(e, "task definition after the rollback", arnSuffix(aws.ToString(e.describeService("svc").TaskDefinition)), "web:1")
	d, err := e.c.DescribeServiceDeployments(e.ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{rolling}})
	e.ok(err, "DescribeServiceDeployments")
	wantEq(e, "stopped deployment", d.ServiceDeployments[0].Status, types.ServiceDeploymentStatusStopped)
	_, err = e.c.StopServiceDeployment(e.ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(rolling)})
	e.fails(err, "ConflictException", "IN_PROGRESS")
}
