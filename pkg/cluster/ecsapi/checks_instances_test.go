package ecsapi

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// describeInstance reads an instance of c back with include.
func (e *env) describeInstance(arn string, include ...types.ContainerInstanceField) types.ContainerInstance {
	e.t.Helper()
	out, err := e.c.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("c"),
		ContainerInstances: []string{arn}, Include: include})
	e.ok(err, "DescribeContainerInstances")
	if len(out.ContainerInstances) != 1 {
		e.t.Fatalf("DescribeContainerInstances %s: %+v", arn, out.Failures)
	}
	return out.ContainerInstances[0]
}

// clusterMatters proves an operation's cluster member: call succeeds
// naming "c" and fails with ClusterNotFoundException naming another.
func clusterMatters(e *env, call func(cluster *string) error) {
	e.t.Helper()
	e.ok(call(aws.String("c")), "call naming cluster c")
	e.fails(call(aws.String("nope")), "ClusterNotFoundException", "")
}

func attrValue(as []types.Attribute, name string) string {
	for _, a := range as {
		if aws.ToString(a.Name) == name {
			return aws.ToString(a.Value)
		}
	}
	return ""
}

func instanceChecks() map[string]func(*env) {
	zone := func(v string) types.Attribute { return types.Attribute{Name: aws.String("zone"), Value: aws.String(v)} }
	return map[string]func(*env){
		"RegisterContainerInstance.cluster": func(e *env) {
			e.cluster("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{Cluster: cluster, TotalResources: testResources(1, 1)})
				return err
			})
		},
		"RegisterContainerInstance.containerInstanceArn": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			out, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("c"),
				ContainerInstanceArn: aws.String(arn), TotalResources: testResources(2048, 2048)})
			e.ok(err, "re-register")
			wantEq(e, "ARN kept", aws.ToString(out.ContainerInstance.ContainerInstanceArn), arn)
			wantEq(e, "new CPU", remainingOf(e.describeInstance(arn), "CPU"), int32(2048))
		},
		"RegisterContainerInstance.totalResources": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			wantEq(e, "remaining MEMORY", remainingOf(e.describeInstance(arn), "MEMORY"), int32(2048))
			_, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("c"), TotalResources: testResources(0, 0)})
			e.fails(err, "InvalidParameterException", "totalResources")
		},
		"RegisterContainerInstance.attributes": func(e *env) {
			e.cluster("c")
			arn := e.instance("c", zone("b"))
			wantEq(e, "zone", attrValue(e.describeInstance(arn).Attributes, "zone"), "b")
		},
		"RegisterContainerInstance.versionInfo": func(e *env) {
			e.cluster("c")
			out, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("c"),
				TotalResources: testResources(1, 1), VersionInfo: &types.VersionInfo{AgentVersion: aws.String("1.2.3")}})
			e.ok(err, "RegisterContainerInstance")
			ci := e.describeInstance(aws.ToString(out.ContainerInstance.ContainerInstanceArn))
			wantEq(e, "agentVersion", aws.ToString(ci.VersionInfo.AgentVersion), "1.2.3")
		},
		"RegisterContainerInstance.tags": func(e *env) {
			e.cluster("c")
			out, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("c"),
				TotalResources: testResources(1, 1), Tags: []types.Tag{{Key: aws.String("rack"), Value: aws.String("r1")}}})
			e.ok(err, "RegisterContainerInstance")
			ci := e.describeInstance(aws.ToString(out.ContainerInstance.ContainerInstanceArn), types.ContainerInstanceFieldTags)
			wantEq(e, "tag rack", tagMap(ci.Tags)["rack"], "r1")
		},
		"DeregisterContainerInstance.cluster": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			e.fails(deregister(e, "nope", arn, false), "ClusterNotFoundException", "")
			e.ok(deregister(e, "c", arn, false), "DeregisterContainerInstance")
		},
		"DeregisterContainerInstance.containerInstance": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			e.ok(deregister(e, "c", arn, false), "DeregisterContainerInstance")
			wantEq(e, "status", aws.ToString(e.describeInstance(arn).Status), "INACTIVE")
		},
		"DeregisterContainerInstance.force": func(e *env) {
			e.std()
			task := e.run(nil)
			inst := aws.ToString(task.ContainerInstanceArn)
			e.fails(deregister(e, "c", inst, false), "InvalidParameterException", "force")
			e.ok(deregister(e, "c", inst, true), "forced DeregisterContainerInstance")
		},
		"ListContainerInstances.cluster": func(e *env) {
			e.cluster("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: cluster})
				return err
			})
		},
		"ListContainerInstances.filter": func(e *env) {
			e.cluster("c")
			e.instance("c", zone("a"))
			b := e.instance("c", zone("b"))
			out, err := e.c.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("c"), Filter: aws.String("attribute:zone == b")})
			e.ok(err, "ListContainerInstances")
			if !slices.Equal(out.ContainerInstanceArns, []string{b}) {
				e.t.Fatalf("filter zone == b: %v, want [%s]", out.ContainerInstanceArns, b)
			}
		},
		"ListContainerInstances.status": func(e *env) {
			e.cluster("c")
			e.instance("c")
			b := e.instance("c")
			_, err := e.c.UpdateContainerInstancesState(e.ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String("c"),
				ContainerInstances: []string{b}, Status: types.ContainerInstanceStatusDraining})
			e.ok(err, "UpdateContainerInstancesState")
			out, err := e.c.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("c"), Status: types.ContainerInstanceStatusDraining})
			e.ok(err, "ListContainerInstances")
			if !slices.Equal(out.ContainerInstanceArns, []string{b}) {
				e.t.Fatalf("DRAINING: %v, want [%s]", out.ContainerInstanceArns, b)
			}
		},
		"ListContainerInstances.maxResults": checkListInstancesPaging,
		"ListContainerInstances.nextToken":  checkListInstancesPaging,
		"DescribeContainerInstances.cluster": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: cluster, ContainerInstances: []string{arn}})
				return err
			})
		},
		"DescribeContainerInstances.containerInstances": func(e *env) {
			e.cluster("c")
			a := e.instance("c")
			out, err := e.c.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("c"), ContainerInstances: []string{a, "nope"}})
			e.ok(err, "DescribeContainerInstances")
			if len(out.ContainerInstances) != 1 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Arn) != "nope" {
				e.t.Fatalf("[a nope] = %+v", out)
			}
		},
		"DescribeContainerInstances.include": func(e *env) {
			e.cluster("c")
			out, err := e.c.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("c"),
				TotalResources: testResources(1, 1), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			e.ok(err, "RegisterContainerInstance")
			arn := aws.ToString(out.ContainerInstance.ContainerInstanceArn)
			if ci := e.describeInstance(arn); ci.Tags != nil || ci.HealthStatus != nil {
				e.t.Fatalf("without include: tags %v health %v", ci.Tags, ci.HealthStatus)
			}
			ci := e.describeInstance(arn, types.ContainerInstanceFieldTags, types.ContainerInstanceFieldContainerInstanceHealth)
			if len(ci.Tags) != 1 || ci.HealthStatus == nil || ci.HealthStatus.OverallStatus != types.InstanceHealthCheckStateInsufficientData {
				e.t.Fatalf("with TAGS and CONTAINER_INSTANCE_HEALTH: tags %v health %+v", ci.Tags, ci.HealthStatus)
			}
		},
		"UpdateContainerInstancesState.cluster": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.UpdateContainerInstancesState(e.ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: cluster,
					ContainerInstances: []string{arn}, Status: types.ContainerInstanceStatusActive})
				return err
			})
		},
		"UpdateContainerInstancesState.containerInstances": checkDraining,
		"UpdateContainerInstancesState.status":             checkDraining,
		"PutAttributes.cluster": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.PutAttributes(e.ctx, &ecs.PutAttributesInput{Cluster: cluster,
					Attributes: []types.Attribute{{Name: aws.String("k"), Value: aws.String("v"), TargetId: aws.String(arn)}}})
				return err
			})
		},
		"PutAttributes.attributes": func(e *env) {
			e.cluster("c")
			arn := e.instance("c")
			_, err := e.c.PutAttributes(e.ctx, &ecs.PutAttributesInput{Cluster: aws.String("c"),
				Attributes: []types.Attribute{{Name: aws.String("stack"), Value: aws.String("prod"), TargetId: aws.String(arn)}}})
			e.ok(err, "PutAttributes")
			wantEq(e, "stack", attrValue(e.describeInstance(arn).Attributes, "stack"), "prod")
		},
		"DeleteAttributes.cluster": func(e *env) {
			e.cluster("c")
			arn := e.instance("c", zone("a"))
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.DeleteAttributes(e.ctx, &ecs.DeleteAttributesInput{Cluster: cluster,
					Attributes: []types.Attribute{{Name: aws.String("zone"), TargetId: aws.String(arn)}}})
				return err
			})
		},
		"DeleteAttributes.attributes": func(e *env) {
			e.cluster("c")
			arn := e.instance("c", zone("a"))
			_, err := e.c.DeleteAttributes(e.ctx, &ecs.DeleteAttributesInput{Cluster: aws.String("c"),
				Attributes: []types.Attribute{{Name: aws.String("zone"), TargetId: aws.String(arn)}}})
			e.ok(err, "DeleteAttributes")
			wantEq(e, "zone after delete", attrValue(e.describeInstance(arn).Attributes, "zone"), "")
		},
		"ListAttributes.cluster": func(e *env) {
			e.cluster("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.ListAttributes(e.ctx, &ecs.ListAttributesInput{Cluster: cluster, TargetType: types.TargetTypeContainerInstance})
				return err
			})
		},
		"ListAttributes.targetType": func(e *env) {
			e.cluster("c")
			_, err := e.c.ListAttributes(e.ctx, &ecs.ListAttributesInput{Cluster: aws.String("c"), TargetType: "task"})
			e.fails(err, "InvalidParameterException", "targetType")
		},
		"ListAttributes.attributeName":           checkListAttributesFilter,
		"ListAttributes.attributeValue":          checkListAttributesFilter,
		"ListAttributes.maxResults":              checkListAttributesPaging,
		"ListAttributes.nextToken":               checkListAttributesPaging,
		"DiscoverPollEndpoint.cluster":           checkDiscoverPollEndpoint,
		"DiscoverPollEndpoint.containerInstance": checkDiscoverPollEndpoint,
	}
}

func remainingOf(ci types.ContainerInstance, name string) int32 {
	for _, r := range ci.RemainingResources {
		if aws.ToString(r.Name) == name {
			return r.IntegerValue
		}
	}
	return -1
}

func deregister(e *env, cluster, arn string, force bool) error {
	_, err := e.c.DeregisterContainerInstance(e.ctx, &ecs.DeregisterContainerInstanceInput{Cluster: aws.String(cluster),
		ContainerInstance: aws.String(arn), Force: aws.Bool(force)})
	return err
}

func checkDraining(e *env) {
	e.cluster("c")
	a, b := e.instance("c"), e.instance("c")
	_, err := e.c.UpdateContainerInstancesState(e.ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String("c"),
		ContainerInstances: []string{b}, Status: types.ContainerInstanceStatusDraining})
	e.ok(err, "UpdateContainerInstancesState")
	wantEq(e, "drained instance", aws.ToString(e.describeInstance(b).Status), "DRAINING")
	wantEq(e, "other instance", aws.ToString(e.describeInstance(a).Status), "ACTIVE")
}

func checkListInstancesPaging(e *env) {
	e.cluster("c")
	e.instance("c")
	e.instance("c")
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("c"), MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		return out.ContainerInstanceArns, out.NextToken, nil
	})
}

func checkListAttributesFilter(e *env) {
	e.cluster("c")
	e.instance("c", types.Attribute{Name: aws.String("zone"), Value: aws.String("a")})
	b := e.instance("c", types.Attribute{Name: aws.String("zone"), Value: aws.String("b")})
	out, err := e.c.ListAttributes(e.ctx, &ecs.ListAttributesInput{Cluster: aws.String("c"), TargetType: types.TargetTypeContainerInstance,
		AttributeName: aws.String("zone"), AttributeValue: aws.String("b")})
	e.ok(err, "ListAttributes")
	if len(out.Attributes) != 1 || aws.ToString(out.Attributes[0].TargetId) != b {
		e.t.Fatalf("zone=b: %+v, want the one of %s", out.Attributes, b)
	}
}

func checkListAttributesPaging(e *env) {
	e.cluster("c")
	e.instance("c", types.Attribute{Name: aws.String("zone"), Value: aws.String("a")})
	e.instance("c", types.Attribute{Name: aws.String("zone"), Value: aws.String("b")})
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListAttributes(e.ctx, &ecs.ListAttributesInput{Cluster: aws.String("c"), TargetType: types.TargetTypeContainerInstance,
			AttributeName: aws.String("zone"), MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		var vs []string
		for _, a := range out.Attributes {
			vs = append(vs, aws.ToString(a.Value))
		}
		return vs, out.NextToken, nil
	})
}

func checkDiscoverPollEndpoint(e *env) {
	e.cluster("c")
	arn := e.instance("c")
	out, err := e.c.DiscoverPollEndpoint(e.ctx, &ecs.DiscoverPollEndpointInput{Cluster: aws.String("c"), ContainerInstance: aws.String(arn)})
	e.ok(err, "DiscoverPollEndpoint")
	if aws.ToString(out.Endpoint) == "" || aws.ToString(out.TelemetryEndpoint) != aws.ToString(out.Endpoint)+TelemetryPath {
		e.t.Fatalf("endpoints %q %q", aws.ToString(out.Endpoint), aws.ToString(out.TelemetryEndpoint))
	}
}
