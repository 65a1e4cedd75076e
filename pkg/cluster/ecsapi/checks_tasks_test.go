package ecsapi

import (
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/scheduler"
)

// listTasks lists the tasks of c with in's filters.
func (e *env) listTasks(in ecs.ListTasksInput) []string {
	e.t.Helper()
	in.Cluster = aws.String("c")
	out, err := e.c.ListTasks(e.ctx, &in)
	e.ok(err, "ListTasks")
	return out.TaskArns
}

// taskState reports a task's state change as its agent would.
func (e *env) taskState(in ecs.SubmitTaskStateChangeInput) {
	e.t.Helper()
	in.Cluster = aws.String("c")
	_, err := e.c.SubmitTaskStateChange(e.ctx, &in)
	e.ok(err, "SubmitTaskStateChange")
}

// containerState reports a container's state change for container app.
func (e *env) containerState(in ecs.SubmitContainerStateChangeInput) types.Container {
	e.t.Helper()
	in.Cluster = aws.String("c")
	in.ContainerName = aws.String("app")
	_, err := e.c.SubmitContainerStateChange(e.ctx, &in)
	e.ok(err, "SubmitContainerStateChange")
	return e.describeTask(aws.ToString(in.Task)).Containers[0]
}

func taskChecks() map[string]func(*env) {
	at := time.Unix(1700000000, 0).UTC()
	return map[string]func(*env){
		"RunTask.cluster": func(e *env) {
			e.std()
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: cluster, TaskDefinition: aws.String("web")})
				return err
			})
		},
		"RunTask.taskDefinition": func(e *env) {
			e.std()
			arn2 := e.taskDef("web", nil)
			t := e.run(func(in *ecs.RunTaskInput) { in.TaskDefinition = aws.String("web") })
			wantEq(e, "latest revision", aws.ToString(t.TaskDefinitionArn), arn2)
			t = e.run(func(in *ecs.RunTaskInput) { in.TaskDefinition = aws.String("web:1") })
			wantEq(e, "revision 1", arnSuffix(aws.ToString(t.TaskDefinitionArn)), "web:1")
		},
		"RunTask.count": func(e *env) {
			e.std()
			out, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), Count: aws.Int32(3)})
			e.ok(err, "RunTask")
			wantEq(e, "tasks", len(out.Tasks), 3)
			_, err = e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), Count: aws.Int32(11)})
			e.fails(err, "InvalidParameterException", "Count")
		},
		"RunTask.startedBy": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) { in.StartedBy = aws.String("ci") })
			wantEq(e, "startedBy", aws.ToString(e.describeTask(aws.ToString(t.TaskArn)).StartedBy), "ci")
		},
		"RunTask.group": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) { in.Group = aws.String("batch") })
			wantEq(e, "group", aws.ToString(e.describeTask(aws.ToString(t.TaskArn)).Group), "batch")
		},
		"RunTask.overrides": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) {
				in.Overrides = &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String("app"), Command: []string{"sleep", "1"}}}}
			})
			got := e.describeTask(aws.ToString(t.TaskArn)).Overrides.ContainerOverrides
			if len(got) != 1 || !slices.Equal(got[0].Command, []string{"sleep", "1"}) {
				e.t.Fatalf("overrides read back %+v", got)
			}
		},
		"RunTask.placementConstraints": func(e *env) {
			e.std()
			out, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"),
				PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:zone == b")}}})
			e.ok(err, "RunTask")
			if len(out.Tasks) != 0 || len(out.Failures) == 0 || aws.ToString(out.Failures[0].Reason) != scheduler.ReasonMemberOf {
				e.t.Fatalf("zone b constraint: %d tasks, failures %+v", len(out.Tasks), out.Failures)
			}
		},
		"RunTask.placementStrategy": func(e *env) {
			e.std()
			e.instance("c")
			// spread over instances puts two tasks apart...
			out, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), Count: aws.Int32(2),
				PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeSpread, Field: aws.String("instanceId")}}})
			e.ok(err, "RunTask spread")
			if aws.ToString(out.Tasks[0].ContainerInstanceArn) == aws.ToString(out.Tasks[1].ContainerInstanceArn) {
				e.t.Fatalf("spread over instanceId put both tasks on %s", aws.ToString(out.Tasks[0].ContainerInstanceArn))
			}
			// ...and binpack on memory keeps the next two together.
			out, err = e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), Count: aws.Int32(2),
				PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("memory")}}})
			e.ok(err, "RunTask binpack")
			wantEq(e, "binpack: same instance", aws.ToString(out.Tasks[0].ContainerInstanceArn), aws.ToString(out.Tasks[1].ContainerInstanceArn))
		},
		"RunTask.clientToken": func(e *env) {
			e.std()
			in := func(count int32) *ecs.RunTaskInput {
				return &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), Count: aws.Int32(count), ClientToken: aws.String("tok-1")}
			}
			first, err := e.c.RunTask(e.ctx, in(2))
			e.ok(err, "RunTask")
			again, err := e.c.RunTask(e.ctx, in(2))
			e.ok(err, "RunTask again with the token")
			if len(again.Tasks) != 2 || aws.ToString(again.Tasks[0].TaskArn) != aws.ToString(first.Tasks[0].TaskArn) && aws.ToString(again.Tasks[0].TaskArn) != aws.ToString(first.Tasks[1].TaskArn) {
				e.t.Fatalf("retry got %d tasks, want the 2 of the first call", len(again.Tasks))
			}
			wantEq(e, "tasks in the cluster", len(e.listTasks(ecs.ListTasksInput{})), 2)
			_, err = e.c.RunTask(e.ctx, in(3))
			e.refusedNaming(err, "clientToken")
			_, err = e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), ClientToken: aws.String(string(make([]byte, 65)))})
			e.refusedNaming(err, "clientToken")
		},
		"RunTask.tags": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) { in.Tags = []types.Tag{{Key: aws.String("job"), Value: aws.String("1")}} })
			wantEq(e, "tag job", tagMap(e.describeTask(aws.ToString(t.TaskArn), types.TaskFieldTags).Tags)["job"], "1")
		},
		"RunTask.launchType": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) { in.LaunchType = types.LaunchTypeExternal })
			wantEq(e, "launchType", e.describeTask(aws.ToString(t.TaskArn)).LaunchType, types.LaunchTypeExternal)
			_, err := e.c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), LaunchType: types.LaunchTypeFargate})
			e.refusedNaming(err, "launchType")
		},
		"StartTask.cluster": func(e *env) {
			e.std()
			inst := e.instance("c")
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: cluster, TaskDefinition: aws.String("web"), ContainerInstances: []string{inst}})
				return err
			})
		},
		"StartTask.containerInstances": func(e *env) {
			e.std()
			inst := e.instance("c")
			t := e.start(inst, nil)
			wantEq(e, "instance", aws.ToString(t.ContainerInstanceArn), inst)
		},
		"StartTask.taskDefinition": func(e *env) {
			e.std()
			e.taskDef("web", nil)
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) { in.TaskDefinition = aws.String("web:1") })
			wantEq(e, "revision", arnSuffix(aws.ToString(t.TaskDefinitionArn)), "web:1")
		},
		"StartTask.startedBy": func(e *env) {
			e.std()
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) { in.StartedBy = aws.String("me") })
			wantEq(e, "startedBy", aws.ToString(e.describeTask(aws.ToString(t.TaskArn)).StartedBy), "me")
		},
		"StartTask.group": func(e *env) {
			e.std()
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) { in.Group = aws.String("g") })
			wantEq(e, "group", aws.ToString(e.describeTask(aws.ToString(t.TaskArn)).Group), "g")
		},
		"StartTask.overrides": func(e *env) {
			e.std()
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) {
				in.Overrides = &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String("app"), Memory: aws.Int32(100)}}}
			})
			wantEq(e, "task memory", aws.ToString(e.describeTask(aws.ToString(t.TaskArn)).Memory), "100")
		},
		"StartTask.tags": func(e *env) {
			e.std()
			t := e.start(e.instance("c"), func(in *ecs.StartTaskInput) { in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}} })
			wantEq(e, "tag k", tagMap(e.describeTask(aws.ToString(t.TaskArn), types.TaskFieldTags).Tags)["k"], "v")
		},
		"StopTask.cluster": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: cluster, Task: aws.String(arn)})
				return err
			})
		},
		"StopTask.task":   checkStopTask,
		"StopTask.reason": checkStopTask,
		"ListTasks.cluster": func(e *env) {
			e.std()
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: cluster})
				return err
			})
		},
		"ListTasks.containerInstance": func(e *env) {
			e.std()
			inst := e.instance("c")
			t := e.start(inst, nil)
			e.run(func(in *ecs.RunTaskInput) {
				in.PlacementConstraints = []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:zone == a")}}
			})
			got := e.listTasks(ecs.ListTasksInput{ContainerInstance: aws.String(inst)})
			if !slices.Equal(got, []string{aws.ToString(t.TaskArn)}) {
				e.t.Fatalf("tasks on %s: %v", inst, got)
			}
		},
		"ListTasks.desiredStatus": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			e.run(nil)
			_, err := e.c.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(arn)})
			e.ok(err, "StopTask")
			got := e.listTasks(ecs.ListTasksInput{DesiredStatus: types.DesiredStatusStopped})
			if !slices.Equal(got, []string{arn}) {
				e.t.Fatalf("STOPPED tasks %v, want [%s]", got, arn)
			}
		},
		"ListTasks.family": func(e *env) {
			e.std()
			e.taskDef("api", nil)
			t := e.run(func(in *ecs.RunTaskInput) { in.TaskDefinition = aws.String("api") })
			e.run(nil)
			if got := e.listTasks(ecs.ListTasksInput{Family: aws.String("api")}); !slices.Equal(got, []string{aws.ToString(t.TaskArn)}) {
				e.t.Fatalf("family api: %v", got)
			}
		},
		"ListTasks.launchType": func(e *env) {
			e.std()
			t := e.run(func(in *ecs.RunTaskInput) { in.LaunchType = types.LaunchTypeExternal })
			e.run(nil)
			if got := e.listTasks(ecs.ListTasksInput{LaunchType: types.LaunchTypeExternal}); !slices.Equal(got, []string{aws.ToString(t.TaskArn)}) {
				e.t.Fatalf("EXTERNAL: %v", got)
			}
		},
		"ListTasks.serviceName": func(e *env) {
			e.std()
			e.run(nil)
			t := e.run(func(in *ecs.RunTaskInput) { in.Group = aws.String("service:svc") })
			if got := e.listTasks(ecs.ListTasksInput{ServiceName: aws.String("svc")}); !slices.Equal(got, []string{aws.ToString(t.TaskArn)}) {
				e.t.Fatalf("service svc: %v", got)
			}
		},
		"ListTasks.startedBy": func(e *env) {
			e.std()
			e.run(nil)
			t := e.run(func(in *ecs.RunTaskInput) { in.StartedBy = aws.String("ci") })
			if got := e.listTasks(ecs.ListTasksInput{StartedBy: aws.String("ci")}); !slices.Equal(got, []string{aws.ToString(t.TaskArn)}) {
				e.t.Fatalf("startedBy ci: %v", got)
			}
		},
		"ListTasks.maxResults": checkListTasksPaging,
		"ListTasks.nextToken":  checkListTasksPaging,
		"DescribeTasks.cluster": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: cluster, Tasks: []string{arn}})
				return err
			})
		},
		"DescribeTasks.tasks": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			out, err := e.c.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{arn, "nope"}})
			e.ok(err, "DescribeTasks")
			if len(out.Tasks) != 1 || len(out.Failures) != 1 {
				e.t.Fatalf("[task nope] = %+v", out)
			}
		},
		"DescribeTasks.include": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(func(in *ecs.RunTaskInput) { in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}} }).TaskArn)
			if tags := e.describeTask(arn).Tags; tags != nil {
				e.t.Fatalf("tags without include: %v", tags)
			}
			if tags := e.describeTask(arn, types.TaskFieldTags).Tags; len(tags) != 1 {
				e.t.Fatalf("tags with TAGS: %v", tags)
			}
		},
		"SubmitTaskStateChange.cluster": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.SubmitTaskStateChange(e.ctx, &ecs.SubmitTaskStateChangeInput{Cluster: cluster, Task: aws.String(arn), Status: aws.String("PENDING")})
				return err
			})
		},
		"SubmitTaskStateChange.task":   checkTaskStopped,
		"SubmitTaskStateChange.status": checkTaskStopped,
		"SubmitTaskStateChange.reason": checkTaskStopped,
		"SubmitTaskStateChange.containers": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), Status: aws.String("RUNNING"),
				Containers: []types.ContainerStateChange{{ContainerName: aws.String("app"), Status: aws.String("RUNNING"), RuntimeId: aws.String("r1")}}})
			ct := e.describeTask(arn).Containers[0]
			wantEq(e, "container status", aws.ToString(ct.LastStatus), "RUNNING")
			wantEq(e, "runtimeId", aws.ToString(ct.RuntimeId), "r1")
		},
		"SubmitTaskStateChange.pullStartedAt": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), PullStartedAt: aws.Time(at)})
			wantEq(e, "pullStartedAt", aws.ToTime(e.describeTask(arn).PullStartedAt).UTC(), at)
		},
		"SubmitTaskStateChange.pullStoppedAt": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), PullStoppedAt: aws.Time(at)})
			wantEq(e, "pullStoppedAt", aws.ToTime(e.describeTask(arn).PullStoppedAt).UTC(), at)
		},
		"SubmitTaskStateChange.executionStoppedAt": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), ExecutionStoppedAt: aws.Time(at)})
			wantEq(e, "executionStoppedAt", aws.ToTime(e.describeTask(arn).ExecutionStoppedAt).UTC(), at)
		},
		"SubmitContainerStateChange.cluster": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			clusterMatters(e, func(cluster *string) error {
				_, err := e.c.SubmitContainerStateChange(e.ctx, &ecs.SubmitContainerStateChangeInput{Cluster: cluster, Task: aws.String(arn),
					ContainerName: aws.String("app"), Status: aws.String("PENDING")})
				return err
			})
		},
		"SubmitContainerStateChange.task":          checkContainerExited,
		"SubmitContainerStateChange.containerName": checkContainerExited,
		"SubmitContainerStateChange.status":        checkContainerExited,
		"SubmitContainerStateChange.exitCode":      checkContainerExited,
		"SubmitContainerStateChange.reason":        checkContainerExited,
		"SubmitContainerStateChange.runtimeId":     checkContainerExited,
		"SubmitContainerStateChange.networkBindings": func(e *env) {
			e.std()
			arn := aws.ToString(e.run(nil).TaskArn)
			ct := e.containerState(ecs.SubmitContainerStateChangeInput{Task: aws.String(arn), Status: aws.String("RUNNING"),
				NetworkBindings: []types.NetworkBinding{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(32768), BindIP: aws.String("0.0.0.0"), Protocol: types.TransportProtocolTcp}}})
			if len(ct.NetworkBindings) != 1 || aws.ToInt32(ct.NetworkBindings[0].HostPort) != 32768 {
				e.t.Fatalf("networkBindings read back %+v", ct.NetworkBindings)
			}
		},
	}
}

// start starts one task of web on inst (after edit).
func (e *env) start(inst string, edit func(*ecs.StartTaskInput)) types.Task {
	e.t.Helper()
	in := &ecs.StartTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), ContainerInstances: []string{inst}}
	if edit != nil {
		edit(in)
	}
	out, err := e.c.StartTask(e.ctx, in)
	e.ok(err, "StartTask")
	if len(out.Tasks) != 1 {
		e.t.Fatalf("StartTask on %s: %+v", inst, out.Failures)
	}
	return out.Tasks[0]
}

func checkStopTask(e *env) {
	e.std()
	arn := aws.ToString(e.run(nil).TaskArn)
	_, err := e.c.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(arn), Reason: aws.String("done")})
	e.ok(err, "StopTask")
	t := e.describeTask(arn)
	wantEq(e, "desiredStatus", aws.ToString(t.DesiredStatus), "STOPPED")
	wantEq(e, "stoppedReason", aws.ToString(t.StoppedReason), "done")
}

func checkListTasksPaging(e *env) {
	e.std()
	e.run(nil)
	e.run(nil)
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String("c"), MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		return out.TaskArns, out.NextToken, nil
	})
}

func checkTaskStopped(e *env) {
	e.std()
	arn := aws.ToString(e.run(nil).TaskArn)
	e.taskState(ecs.SubmitTaskStateChangeInput{Task: aws.String(arn), Status: aws.String("STOPPED"), Reason: aws.String("OOM")})
	t := e.describeTask(arn)
	wantEq(e, "lastStatus", aws.ToString(t.LastStatus), "STOPPED")
	wantEq(e, "stoppedReason", aws.ToString(t.StoppedReason), "OOM")
}

func checkContainerExited(e *env) {
	e.std()
	arn := aws.ToString(e.run(nil).TaskArn)
	ct := e.containerState(ecs.SubmitContainerStateChangeInput{Task: aws.String(arn), Status: aws.String("STOPPED"),
		ExitCode: aws.Int32(3), Reason: aws.String("bye"), RuntimeId: aws.String("rid")})
	wantEq(e, "lastStatus", aws.ToString(ct.LastStatus), "STOPPED")
	wantEq(e, "exitCode", aws.ToInt32(ct.ExitCode), int32(3))
	wantEq(e, "reason", aws.ToString(ct.Reason), "bye")
	wantEq(e, "runtimeId", aws.ToString(ct.RuntimeId), "rid")
}
