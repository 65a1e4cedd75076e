package ecsapi

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func vpcConfig(subnets []string, groups []string, public types.AssignPublicIp) *types.NetworkConfiguration {
	return &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: subnets, SecurityGroups: groups, AssignPublicIp: public}}
}

// netOp runs one operation with a network configuration on a task
// definition family, and reads back the subnet the result records.
type netOp func(e *env, family string, nc *types.NetworkConfiguration) (subnet string, err error)

func attachmentDetail(t types.Task, name string) string {
	for _, a := range t.Attachments {
		for _, d := range a.Details {
			if aws.ToString(d.Name) == name {
				return aws.ToString(d.Value)
			}
		}
	}
	return ""
}

func networkOps() map[string]netOp {
	taskSubnet := func(e *env, arn string) string { return attachmentDetail(e.describeTask(arn), "subnetId") }
	return map[string]netOp{
		"RunTask": func(e *env, family string, nc *types.NetworkConfiguration) (string, error) {
			out, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(family), NetworkConfiguration: nc})
			if err != nil {
				return "", err
			}
			return taskSubnet(e, aws.ToString(out.Tasks[0].TaskArn)), nil
		},
		"StartTask": func(e *env, family string, nc *types.NetworkConfiguration) (string, error) {
			out, err := e.c.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(family),
				ContainerInstances: []string{e.instance("c")}, NetworkConfiguration: nc})
			if err != nil {
				return "", err
			}
			return taskSubnet(e, aws.ToString(out.Tasks[0].TaskArn)), nil
		},
		"CreateService": func(e *env, family string, nc *types.NetworkConfiguration) (string, error) {
			_, err := e.c.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("svc"),
				TaskDefinition: aws.String(family), DesiredCount: aws.Int32(0), NetworkConfiguration: nc})
			if err != nil {
				return "", err
			}
			return e.describeService("svc").NetworkConfiguration.AwsvpcConfiguration.Subnets[0], nil
		},
		"UpdateService": func(e *env, family string, nc *types.NetworkConfiguration) (string, error) {
			name := "svc-" + family
			e.service(name, func(in *ecs.CreateServiceInput) { in.TaskDefinition = aws.String(family) })
			_, err := e.c.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String(name), NetworkConfiguration: nc})
			if err != nil {
				return "", err
			}
			svc := e.describeService(name)
			if len(svc.Deployments) != 2 {
				e.t.Fatalf("a new network configuration made %d deployments, want 2", len(svc.Deployments))
			}
			return svc.NetworkConfiguration.AwsvpcConfiguration.Subnets[0], nil
		},
	}
}

// vpcScene is std plus the awsvpc task definition "vpc".
func (e *env) vpcScene() {
	e.std()
	e.taskDef("vpc", func(in *ecs.RegisterTaskDefinitionInput) { in.NetworkMode = types.NetworkModeAwsvpc })
}

func networkChecks() map[string]func(*env) {
	checks := map[string]func(*env){}
	for op, call := range networkOps() {
		checks[op+".networkConfiguration"] = func(e *env) {
			e.vpcScene()
			subnet, err := call(e, "vpc", vpcConfig([]string{"subnet-a"}, nil, types.AssignPublicIpDisabled))
			e.ok(err, op)
			wantEq(e, "subnet", subnet, "subnet-a")
			_, err = call(e, "web", vpcConfig([]string{"subnet-a"}, nil, ""))
			e.refusedNaming(err, "networkConfiguration")
		}
		checks[op+".networkConfiguration.awsvpcConfiguration.subnets"] = func(e *env) {
			e.vpcScene()
			many := make([]string, maxSubnets+1)
			for i := range many {
				many[i] = "subnet-x"
			}
			_, err := call(e, "vpc", vpcConfig(many, nil, ""))
			e.refusedNaming(err, "networkConfiguration.awsvpcConfiguration.subnets")
		}
		checks[op+".networkConfiguration.awsvpcConfiguration.securityGroups"] = func(e *env) {
			e.vpcScene()
			_, err := call(e, "vpc", vpcConfig([]string{"subnet-a"}, []string{"sg-1"}, ""))
			e.refusedNaming(err, "networkConfiguration.awsvpcConfiguration.securityGroups")
		}
		checks[op+".networkConfiguration.awsvpcConfiguration.assignPublicIp"] = func(e *env) {
			e.vpcScene()
			_, err := call(e, "vpc", vpcConfig([]string{"subnet-a"}, nil, types.AssignPublicIpEnabled))
			e.refusedNaming(err, "networkConfiguration.awsvpcConfiguration.assignPublicIp")
		}
	}
	// The attachment follows the task.
	checks["RunTask.networkConfiguration"] = func(e *env) {
		e.vpcScene()
		subnet, err := networkOps()["RunTask"](e, "vpc", vpcConfig([]string{"subnet-a"}, nil, ""))
		e.ok(err, "RunTask")
		wantEq(e, "subnet", subnet, "subnet-a")
		arn := e.listTasks(ecs.ListTasksInput{})[0]
		status := func() string { return aws.ToString(e.describeTask(arn).Attachments[0].Status) }
		wantEq(e, "attachment at first", status(), "PRECREATED")
		if eni := attachmentDetail(e.describeTask(arn), "networkInterfaceId"); !strings.HasPrefix(eni, "eni-") {
			e.t.Fatalf("networkInterfaceId %q", eni)
		}
		e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), Status: aws.String("RUNNING")})
		wantEq(e, "attachment when RUNNING", status(), "ATTACHED")
		e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), Status: aws.String("STOPPED")})
		wantEq(e, "attachment when STOPPED", status(), "DELETED")
		_, err = e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"),
			NetworkConfiguration: vpcConfig([]string{"subnet-a"}, nil, "")})
		e.refusedNaming(err, "networkConfiguration")
	}
	const doc = `{"instanceId":"i-0abc","availabilityZone":"us-test-1b","instanceType":"m7g.large","imageId":"ami-1","region":"us-test-1"}`
	register := func(e *env, in *ecs.RegisterContainerInstanceInput) (types.ContainerInstance, error) {
		in.Cluster, in.TotalResources = aws.String("c"), testResources(1024, 2048)
		out, err := e.c.RegisterContainerInstance(e.ctx, in)
		if err != nil {
			return types.ContainerInstance{}, err
		}
		return e.describeInstance(aws.ToString(out.ContainerInstance.ContainerInstanceArn)), nil
	}
	checks["RegisterContainerInstance.instanceIdentityDocument"] = func(e *env) {
		e.std()
		ci, err := register(e, &ecs.RegisterContainerInstanceInput{InstanceIdentityDocument: aws.String(doc)})
		e.ok(err, "RegisterContainerInstance")
		wantEq(e, "ec2InstanceId", aws.ToString(ci.Ec2InstanceId), "i-0abc")
		wantEq(e, "ecs.availability-zone", attrValue(ci.Attributes, "ecs.availability-zone"), "us-test-1b")
		wantEq(e, "ecs.instance-type", attrValue(ci.Attributes, "ecs.instance-type"), "m7g.large")
		t := e.run(func(in *ecs.RunTaskInput) {
			in.PlacementConstraints = []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf,
				Expression: aws.String("attribute:ecs.instance-type =~ m7g.* and attribute:ecs.availability-zone == us-test-1b")}}
		})
		wantEq(e, "placed by the document's attributes", aws.ToString(t.ContainerInstanceArn), aws.ToString(ci.ContainerInstanceArn))
		_, err = register(e, &ecs.RegisterContainerInstanceInput{InstanceIdentityDocument: aws.String("not json")})
		e.refusedNaming(err, "instanceIdentityDocument")
	}
	checks["RegisterContainerInstance.instanceIdentityDocumentSignature"] = func(e *env) {
		e.cluster("c")
		ci, err := register(e, &ecs.RegisterContainerInstanceInput{InstanceIdentityDocument: aws.String(doc), InstanceIdentityDocumentSignature: aws.String("c2ln")})
		e.ok(err, "RegisterContainerInstance with a signature")
		wantEq(e, "ec2InstanceId", aws.ToString(ci.Ec2InstanceId), "i-0abc")
	}
	return checks
}
