package ecsapi

import (
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/scheduler"
)

// describeTD reads a task definition back with include.
func (e *env) describeTD(ref string, include ...types.TaskDefinitionField) *ecs.DescribeTaskDefinitionOutput {
	e.t.Helper()
	out, err := e.c.DescribeTaskDefinition(e.ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(ref), Include: include})
	e.ok(err, "DescribeTaskDefinition "+ref)
	return out
}

// tdReadBack registers web with edit and returns what DescribeTaskDefinition
// then answers.
func (e *env) tdReadBack(edit func(*ecs.RegisterTaskDefinitionInput)) types.TaskDefinition {
	e.t.Helper()
	arn := e.taskDef("web", edit)
	return *e.describeTD(arn).TaskDefinition
}

// tdRefused registers web with edit and expects the refusal naming member.
func (e *env) tdRefused(member string, edit func(*ecs.RegisterTaskDefinitionInput)) {
	e.t.Helper()
	in := tdInput("web")
	edit(in)
	_, err := e.c.RegisterTaskDefinition(e.ctx, in)
	e.refusedNaming(err, member)
}

func taskDefinitionChecks() map[string]func(*env) {
	return map[string]func(*env){
		"RegisterTaskDefinition.family": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("web", nil)
			wantEq(e, "latest revision", e.describeTD("web").TaskDefinition.Revision, int32(2))
			_, err := e.c.RegisterTaskDefinition(e.ctx, tdInput("bad family"))
			e.fails(err, "ClientException", "Family")
		},
		"RegisterTaskDefinition.containerDefinitions": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.ContainerDefinitions = append(in.ContainerDefinitions, types.ContainerDefinition{
					Name: aws.String("side"), Image: aws.String("nginx:1"), Memory: aws.Int32(32), Essential: aws.Bool(false)})
			})
			if len(td.ContainerDefinitions) != 2 || aws.ToString(td.ContainerDefinitions[1].Image) != "nginx:1" || aws.ToBool(td.ContainerDefinitions[1].Essential) {
				e.t.Fatalf("containers read back %+v", td.ContainerDefinitions)
			}
		},
		"RegisterTaskDefinition.containerDefinitions.resourceRequirements": func(e *env) {
			e.tdRefused("containerDefinitions.resourceRequirements", func(in *ecs.RegisterTaskDefinitionInput) {
				in.ContainerDefinitions[0].ResourceRequirements = []types.ResourceRequirement{{Type: types.ResourceTypeGpu, Value: aws.String("1")}}
			})
		},
		"RegisterTaskDefinition.cpu": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) { in.Cpu = aws.String("0.5 vCPU") })
			wantEq(e, "cpu", aws.ToString(td.Cpu), "512")
		},
		"RegisterTaskDefinition.memory": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) { in.Memory = aws.String("1 GB") })
			wantEq(e, "memory", aws.ToString(td.Memory), "1024")
		},
		"RegisterTaskDefinition.networkMode": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.NetworkMode = types.NetworkModeHost
				in.ContainerDefinitions[0].PortMappings = []types.PortMapping{{ContainerPort: aws.Int32(8080)}}
			})
			wantEq(e, "networkMode", td.NetworkMode, types.NetworkModeHost)
			wantEq(e, "hostPort (host mode: the container port)", aws.ToInt32(td.ContainerDefinitions[0].PortMappings[0].HostPort), int32(8080))
		},
		"RegisterTaskDefinition.volumes": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.Volumes = []types.Volume{{Name: aws.String("data"), Host: &types.HostVolumeProperties{SourcePath: aws.String("/srv/data")}}}
			})
			if len(td.Volumes) != 1 || aws.ToString(td.Volumes[0].Host.SourcePath) != "/srv/data" {
				e.t.Fatalf("volumes read back %+v", td.Volumes)
			}
		},
		"RegisterTaskDefinition.volumes.efsVolumeConfiguration": func(e *env) {
			e.tdRefused("volumes.efsVolumeConfiguration", func(in *ecs.RegisterTaskDefinitionInput) {
				in.Volumes = []types.Volume{{Name: aws.String("efs"), EfsVolumeConfiguration: &types.EFSVolumeConfiguration{FileSystemId: aws.String("fs-1")}}}
			})
		},
		"RegisterTaskDefinition.volumes.fsxWindowsFileServerVolumeConfiguration": func(e *env) {
			e.tdRefused("volumes.fsxWindowsFileServerVolumeConfiguration", func(in *ecs.RegisterTaskDefinitionInput) {
				in.Volumes = []types.Volume{{Name: aws.String("fsx"), FsxWindowsFileServerVolumeConfiguration: &types.FSxWindowsFileServerVolumeConfiguration{
					FileSystemId: aws.String("fs-1"), RootDirectory: aws.String(`\`),
					AuthorizationConfig: &types.FSxWindowsFileServerAuthorizationConfig{CredentialsParameter: aws.String("p"), Domain: aws.String("d")}}}}
			})
		},
		"RegisterTaskDefinition.volumes.configuredAtLaunch": func(e *env) {
			e.tdRefused("volumes.configuredAtLaunch", func(in *ecs.RegisterTaskDefinitionInput) {
				in.Volumes = []types.Volume{{Name: aws.String("ebs"), ConfiguredAtLaunch: aws.Bool(true)}}
			})
		},
		"RegisterTaskDefinition.placementConstraints": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.PlacementConstraints = []types.TaskDefinitionPlacementConstraint{{Type: types.TaskDefinitionPlacementConstraintTypeMemberOf, Expression: aws.String("attribute:zone == b")}}
			})
			wantEq(e, "constraint", aws.ToString(td.PlacementConstraints[0].Expression), "attribute:zone == b")
			e.cluster("c")
			e.instance("c", types.Attribute{Name: aws.String("zone"), Value: aws.String("a")})
			out, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web")})
			e.ok(err, "RunTask")
			if len(out.Tasks) != 0 || len(out.Failures) == 0 || aws.ToString(out.Failures[0].Reason) != scheduler.ReasonMemberOf {
				e.t.Fatalf("RunTask with no instance in zone b: tasks %d failures %+v, want a MemberOf failure", len(out.Tasks), out.Failures)
			}
		},
		"RegisterTaskDefinition.taskRoleArn": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.TaskRoleArn = aws.String("arn:aws:iam::123456789012:role/app")
			})
			wantEq(e, "taskRoleArn", aws.ToString(td.TaskRoleArn), "arn:aws:iam::123456789012:role/app")
		},
		"RegisterTaskDefinition.executionRoleArn": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.ExecutionRoleArn = aws.String("arn:aws:iam::123456789012:role/exec")
			})
			wantEq(e, "executionRoleArn", aws.ToString(td.ExecutionRoleArn), "arn:aws:iam::123456789012:role/exec")
		},
		"RegisterTaskDefinition.pidMode": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) { in.PidMode = types.PidModeHost })
			wantEq(e, "pidMode", td.PidMode, types.PidModeHost)
		},
		"RegisterTaskDefinition.ipcMode": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) { in.IpcMode = types.IpcModeTask })
			wantEq(e, "ipcMode", td.IpcMode, types.IpcModeTask)
		},
		"RegisterTaskDefinition.tags": func(e *env) {
			arn := e.taskDef("web", func(in *ecs.RegisterTaskDefinitionInput) {
				in.Tags = []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}
			})
			wantEq(e, "tag team", tagMap(e.describeTD(arn, types.TaskDefinitionFieldTags).Tags)["team"], "a")
		},
		"RegisterTaskDefinition.requiresCompatibilities": func(e *env) {
			td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) {
				in.RequiresCompatibilities = []types.Compatibility{types.CompatibilityExternal}
			})
			if !slices.Equal(td.RequiresCompatibilities, []types.Compatibility{types.CompatibilityExternal}) {
				e.t.Fatalf("requiresCompatibilities read back %v", td.RequiresCompatibilities)
			}
			e.tdRefused("requiresCompatibilities", func(in *ecs.RegisterTaskDefinitionInput) {
				in.RequiresCompatibilities = []types.Compatibility{types.CompatibilityFargate}
			})
		},
		"RegisterTaskDefinition.runtimePlatform": checkRuntimePlatform,
		"DeregisterTaskDefinition.taskDefinition": func(e *env) {
			e.taskDef("web", nil)
			_, err := e.c.DeregisterTaskDefinition(e.ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("web:1")})
			e.ok(err, "DeregisterTaskDefinition")
			wantEq(e, "status", e.describeTD("web:1").TaskDefinition.Status, types.TaskDefinitionStatusInactive)
		},
		"DescribeTaskDefinition.taskDefinition": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("web", nil)
			wantEq(e, "web:1", e.describeTD("web:1").TaskDefinition.Revision, int32(1))
			wantEq(e, "web", e.describeTD("web").TaskDefinition.Revision, int32(2))
		},
		"DescribeTaskDefinition.include": func(e *env) {
			e.taskDef("web", func(in *ecs.RegisterTaskDefinitionInput) {
				in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}
			})
			if tags := e.describeTD("web").Tags; tags != nil {
				e.t.Fatalf("tags without include: %v", tags)
			}
			if tags := e.describeTD("web", types.TaskDefinitionFieldTags).Tags; len(tags) != 1 {
				e.t.Fatalf("tags with include TAGS: %v", tags)
			}
		},
		"ListTaskDefinitions.familyPrefix": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("webapp", nil)
			out, err := e.c.ListTaskDefinitions(e.ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("web")})
			e.ok(err, "ListTaskDefinitions")
			if len(out.TaskDefinitionArns) != 1 || arnSuffix(out.TaskDefinitionArns[0]) != "web:1" {
				e.t.Fatalf("familyPrefix web (a whole family name) = %v", out.TaskDefinitionArns)
			}
		},
		"ListTaskDefinitions.sort": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("web", nil)
			out, err := e.c.ListTaskDefinitions(e.ctx, &ecs.ListTaskDefinitionsInput{Sort: types.SortOrderDesc})
			e.ok(err, "ListTaskDefinitions")
			wantEq(e, "first of DESC", arnSuffix(out.TaskDefinitionArns[0]), "web:2")
		},
		"ListTaskDefinitions.status": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("web", nil)
			_, err := e.c.DeregisterTaskDefinition(e.ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("web:1")})
			e.ok(err, "DeregisterTaskDefinition")
			out, err := e.c.ListTaskDefinitions(e.ctx, &ecs.ListTaskDefinitionsInput{Status: types.TaskDefinitionStatusInactive})
			e.ok(err, "ListTaskDefinitions")
			if len(out.TaskDefinitionArns) != 1 || arnSuffix(out.TaskDefinitionArns[0]) != "web:1" {
				e.t.Fatalf("INACTIVE = %v", out.TaskDefinitionArns)
			}
		},
		"ListTaskDefinitions.maxResults": checkListTaskDefinitionsPaging,
		"ListTaskDefinitions.nextToken":  checkListTaskDefinitionsPaging,
		"ListTaskDefinitionFamilies.familyPrefix": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("webapp", nil)
			e.taskDef("api", nil)
			out, err := e.c.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{FamilyPrefix: aws.String("we")})
			e.ok(err, "ListTaskDefinitionFamilies")
			if !slices.Equal(out.Families, []string{"web", "webapp"}) {
				e.t.Fatalf("familyPrefix we = %v", out.Families)
			}
		},
		"ListTaskDefinitionFamilies.status": func(e *env) {
			e.taskDef("web", nil)
			e.taskDef("api", nil)
			_, err := e.c.DeregisterTaskDefinition(e.ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("api:1")})
			e.ok(err, "DeregisterTaskDefinition")
			out, err := e.c.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{Status: types.TaskDefinitionFamilyStatusInactive})
			e.ok(err, "ListTaskDefinitionFamilies")
			if !slices.Equal(out.Families, []string{"api"}) {
				e.t.Fatalf("INACTIVE = %v", out.Families)
			}
		},
		"ListTaskDefinitionFamilies.maxResults": checkListFamiliesPaging,
		"ListTaskDefinitionFamilies.nextToken":  checkListFamiliesPaging,
	}
}

// arnSuffix is the part of an ARN after its last slash.
func arnSuffix(arn string) string {
	for i := len(arn) - 1; i >= 0; i-- {
		if arn[i] == '/' {
			return arn[i+1:]
		}
	}
	return arn
}

func checkListTaskDefinitionsPaging(e *env) {
	e.taskDef("web", nil)
	e.taskDef("web", nil)
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListTaskDefinitions(e.ctx, &ecs.ListTaskDefinitionsInput{MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		return out.TaskDefinitionArns, out.NextToken, nil
	})
}

func checkListFamiliesPaging(e *env) {
	e.taskDef("web", nil)
	e.taskDef("api", nil)
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		return out.Families, out.NextToken, nil
	})
}

// checkRuntimePlatform proves runtimePlatform takes part in placement: an
// ARM64 task never lands on an x86_64 instance and a Windows one never on
// Linux, with a failure saying why; a matching instance takes them.
func checkRuntimePlatform(e *env) {
	e.cluster("c")
	attr := func(k, v string) types.Attribute { return types.Attribute{Name: aws.String(k), Value: aws.String(v)} }
	x86 := e.instance("c", attr("ecs.cpu-architecture", "x86_64"), attr("ecs.os-type", "linux"), attr("ecs.os-family", "LINUX"))
	platform := func(family string, rp types.RuntimePlatform) {
		td := e.tdReadBack(func(in *ecs.RegisterTaskDefinitionInput) { in.Family, in.RuntimePlatform = aws.String(family), &rp })
		wantEq(e, family+" runtimePlatform read back", td.RuntimePlatform.CpuArchitecture, rp.CpuArchitecture)
	}
	platform("arm", types.RuntimePlatform{CpuArchitecture: types.CPUArchitectureArm64, OperatingSystemFamily: types.OSFamilyLinux})
	platform("win", types.RuntimePlatform{OperatingSystemFamily: types.OSFamilyWindowsServer2022Core})
	platform("x86", types.RuntimePlatform{CpuArchitecture: types.CPUArchitectureX8664, OperatingSystemFamily: types.OSFamilyLinux})
	for _, fam := range []string{"arm", "win"} {
		out, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(fam)})
		e.ok(err, "RunTask "+fam)
		if len(out.Tasks) != 0 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != scheduler.ReasonAttribute ||
			!strings.Contains(aws.ToString(out.Failures[0].Detail), "runtimePlatform") {
			e.t.Fatalf("%s task on an x86_64 Linux instance: %d tasks, failures %+v", fam, len(out.Tasks), out.Failures)
		}
		start, err := e.c.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(fam), ContainerInstances: []string{x86}})
		e.ok(err, "StartTask "+fam)
		if len(start.Tasks) != 0 || len(start.Failures) != 1 || aws.ToString(start.Failures[0].Reason) != scheduler.ReasonAttribute {
			e.t.Fatalf("StartTask %s on x86_64: %+v", fam, start)
		}
	}
	arm := e.instance("c", attr("ecs.cpu-architecture", "arm64"), attr("ecs.os-type", "linux"))
	t := e.run(func(in *ecs.RunTaskInput) { in.TaskDefinition = aws.String("arm") })
	wantEq(e, "arm task's instance", aws.ToString(t.ContainerInstanceArn), arm)
	t = e.run(func(in *ecs.RunTaskInput) {
		in.TaskDefinition = aws.String("x86")
		in.PlacementStrategy = []types.PlacementStrategy{{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("memory")}}
	})
	wantEq(e, "x86 task's instance", aws.ToString(t.ContainerInstanceArn), x86)
	e.tdRefused("runtimePlatform", func(in *ecs.RegisterTaskDefinitionInput) {
		in.RuntimePlatform = &types.RuntimePlatform{CpuArchitecture: "SPARC"}
	})
}
