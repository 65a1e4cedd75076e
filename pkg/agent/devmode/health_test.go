package devmode_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/acs"
)

// healthTaskDef registers the web task definition with a health check
// running cmd (a shell command) every 5 seconds, one retry.
func (e *e2e) healthTaskDef(family, cmd string) string {
	e.t.Helper()
	out, err := e.admin.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("web"), Image: aws.String(e.image), Memory: aws.Int32(32), Essential: aws.Bool(true),
			HealthCheck: &types.HealthCheck{Command: []string{"CMD-SHELL", cmd},
				Interval: aws.Int32(5), Timeout: aws.Int32(2), Retries: aws.Int32(1)},
		}}})
	if err != nil {
		e.t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

// waitHealth polls DescribeTasks until the task and its web container show
// want as healthStatus.
func (e *e2e) waitHealth(arn string, want types.HealthStatus, d time.Duration) types.Task {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		t, err := e.describe(context.Background(), arn)
		if err == nil && t.HealthStatus == want && len(t.Containers) == 1 && t.Containers[0].HealthStatus == want {
			return t
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s: want healthStatus %s on the task and its container, got %+v (err %v)", arn, want, t, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestContainerHealthReachesEndpoint: the agent publishes its containers'
// health on the TCS websocket; DescribeTasks shows HEALTHY for a passing
// check and UNHEALTHY for a failing one, and a service replaces its task
// once that task's container turns UNHEALTHY.
func TestContainerHealthReachesEndpoint(t *testing.T) {
	e := newE2E(t, acs.Options{})
	e.runAgent(e.spec())

	good := e.runTasks(e.healthTaskDef("healthy", "wget -q -O /dev/null http://127.0.0.1/"), 1)[0]
	bad := e.runTasks(e.healthTaskDef("sick", "exit 1"), 1)[0]
	e.waitStatus(good, "RUNNING", 2*time.Minute)
	e.waitHealth(good, types.HealthStatusHealthy, time.Minute)
	e.waitHealth(bad, types.HealthStatusUnhealthy, time.Minute)

	ctx := context.Background()
	for _, arn := range []string{good, bad} {
		if _, err := e.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("default"), Task: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
	}

	// A service of the failing definition: its task is stopped for failing
	// its health checks and replaced.
	_, err := e.admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("default"), ServiceName: aws.String("sick"),
		TaskDefinition: aws.String(e.healthTaskDef("sick", "exit 1")), DesiredCount: aws.Int32(1)})
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	t.Cleanup(func() {
		_, _ = e.admin.DeleteService(context.Background(), &ecs.DeleteServiceInput{Cluster: aws.String("default"),
			Service: aws.String("sick"), Force: aws.Bool(true)})
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := e.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default"), ServiceName: aws.String("sick"),
			DesiredStatus: types.DesiredStatusStopped})
		if err == nil && len(out.TaskArns) > 0 {
			st, err := e.describe(ctx, out.TaskArns[0])
			if err == nil && strings.Contains(aws.ToString(st.StoppedReason), "health checks") {
				break
			}
		}
		if time.Now().After(deadline) {
			all, _ := e.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default")})
			var states []string
			for _, a := range all.TaskArns {
				st, _ := e.describe(ctx, a)
				states = append(states, fmt.Sprintf("%s %s %s %q %s", aws.ToString(st.Group), aws.ToString(st.LastStatus), st.HealthStatus, aws.ToString(st.StoppedReason), aws.ToString(st.StartedBy)))
			}
			svc, _ := e.admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{"sick"}})
			t.Fatalf("no task of the service was stopped for failing its health checks (ListTasks: %v, %v); tasks:\n%s\nservice: %+v", out.TaskArns, err, strings.Join(states, "\n"), svc)
		}
		time.Sleep(500 * time.Millisecond)
	}
	svc, err := e.admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{"sick"}})
	if err != nil || len(svc.Services) != 1 {
		t.Fatalf("DescribeServices: %v", err)
	}
	found := false
	for _, ev := range svc.Services[0].Events {
		found = found || strings.Contains(aws.ToString(ev.Message), "has stopped 1 running tasks")
	}
	if !found {
		t.Fatalf("service events lack the stop of the unhealthy task: %+v", svc.Services[0].Events)
	}
}
