package simfleet_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
)

// fastServices makes the controller and health grace quick enough for
// tests; the 40 s default grace is checked in pkg/cluster/api.
var fastServices = servicectl.Timing{Interval: 20 * time.Millisecond, HealthyAfter: 100 * time.Millisecond, LaunchBackoff: 50 * time.Millisecond}

type svcEnv struct {
	*simfleet.Env
	t   *testing.T
	ctx context.Context
}

func newSvcEnv(t *testing.T, fo simfleet.Options, zones ...string) *svcEnv {
	t.Helper()
	fo.StartDelay = max(fo.StartDelay, 10*time.Millisecond)
	env := simfleet.NewEnv(t, simfleet.EnvOptions{Services: fastServices, Fleet: fo})
	e := &svcEnv{Env: env, t: t, ctx: context.Background()}
	for i, z := range zones {
		if _, err := env.Fleet.Add(e.ctx, 1, simfleet.Zones(i, z)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *svcEnv) register(family string, memory int32) string {
	e.t.Helper()
	out, err := e.Admin.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String("busybox"), Cpu: 64, Memory: aws.Int32(memory), Essential: aws.Bool(true),
		}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

func (e *svcEnv) describe(name string) types.Service {
	e.t.Helper()
	out, err := e.Admin.DescribeServices(e.ctx, &ecs.DescribeServicesInput{Cluster: aws.String(e.Cluster), Services: []string{name}})
	if err != nil || len(out.Services) != 1 {
		e.t.Fatalf("describe %s: %v %+v", name, err, out)
	}
	return out.Services[0]
}

// waitFor polls cond (every 20 ms) for up to 20 s.
func (e *svcEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasEvent(svc types.Service, re string) bool {
	r := regexp.MustCompile(re)
	for _, ev := range svc.Events {
		if r.MatchString(aws.ToString(ev.Message)) {
			return true
		}
	}
	return false
}

// eventTotal adds up the number that re's first group captures over the
// service's events: a controller pass reports what it did in that pass,
// so two tasks registered in two passes are two events of one target.
func eventTotal(svc types.Service, re string) int {
	r := regexp.MustCompile(re)
	total := 0
	for _, ev := range svc.Events {
		if m := r.FindStringSubmatch(aws.ToString(ev.Message)); m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil {
				panic(fmt.Sprintf("eventTotal: %q captures %q, not a number", re, m[1]))
			}
			total += n
		}
	}
	return total
}

func (e *svcEnv) steady(name string) func() bool {
	return func() bool {
		svc := e.describe(name)
		return len(svc.Deployments) == 1 && svc.Deployments[0].RolloutState == types.DeploymentRolloutStateCompleted &&
			svc.RunningCount == svc.DesiredCount && svc.PendingCount == 0 && hasEvent(svc, `has reached a steady state\.$`)
	}
}

// tasks returns the service's tasks with desired status RUNNING.
func (e *svcEnv) tasks(name string) []types.Task {
	e.t.Helper()
	lt, err := e.Admin.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String(name)})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(lt.TaskArns) == 0 {
		return nil
	}
	dt, err := e.Admin.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String(e.Cluster), Tasks: lt.TaskArns})
	if err != nil {
		e.t.Fatal(err)
	}
	return dt.Tasks
}

func (e *svcEnv) zoneOf() map[string]string {
	out := map[string]string{}
	ci, err := e.Admin.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String(e.Cluster)})
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.Admin.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String(e.Cluster), ContainerInstances: ci.ContainerInstanceArns})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, in := range d.ContainerInstances {
		for _, a := range in.Attributes {
			if aws.ToString(a.Name) == "ecs.availability-zone" {
				out[aws.ToString(in.ContainerInstanceArn)] = aws.ToString(a.Value)
			}
		}
	}
	return out
}

func (e *svcEnv) perZone(tasks []types.Task) string {
	zones := e.zoneOf()
	var zs []string
	for _, t := range tasks {
		zs = append(zs, zones[aws.ToString(t.ContainerInstanceArn)])
	}
	sort.Strings(zs)
	return strings.Join(zs, "")
}

func TestServiceHoldsDesiredCountThroughTaskDeaths(t *testing.T) {
	e := newSvcEnv(t, simfleet.Options{}, "a", "b", "c")
	e.register("web", 128)
	out, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(6)})
	if err != nil {
		t.Fatal(err)
	}
	dep := aws.ToString(out.Service.Deployments[0].Id)
	if !regexp.MustCompile(`^ecs-svc/\d{19}$`).MatchString(dep) {
		t.Fatalf("deployment id %q, want ecs-svc/<19 digits>", dep)
	}
	e.waitFor("steady state", e.steady("web"))
	tasks := e.tasks("web")
	if got := e.perZone(tasks); got != "aabbcc" {
		t.Fatalf("tasks per zone %q, want the default spread aabbcc", got)
	}
	for _, tk := range tasks {
		if aws.ToString(tk.StartedBy) != dep || aws.ToString(tk.Group) != "service:web" {
			t.Fatalf("task startedBy %q group %q, want %s and service:web", aws.ToString(tk.StartedBy), aws.ToString(tk.Group), dep)
		}
	}
	// Two tasks die on their hosts; the service replaces them.
	killed := map[string]bool{}
	for _, tk := range tasks[:2] {
		if !e.Fleet.Kill(aws.ToString(tk.TaskArn)) {
			t.Fatalf("no simulated instance runs %s", aws.ToString(tk.TaskArn))
		}
		killed[aws.ToString(tk.TaskArn)] = true
	}
	e.waitFor("replacements", func() bool {
		ts := e.tasks("web")
		running := 0
		for _, tk := range ts {
			if killed[aws.ToString(tk.TaskArn)] {
				return false
			}
			if aws.ToString(tk.LastStatus) == "RUNNING" {
				running++
			}
		}
		return running == 6
	})
	if got := e.perZone(e.tasks("web")); got != "aabbcc" {
		t.Errorf("after replacement tasks per zone %q, want aabbcc", got)
	}
	svc := e.describe("web")
	// The two replacements may start in one pass or two.
	started := 0
	startedRE := regexp.MustCompile(`^\(service web\) has started (\d+) tasks: (\(task [0-9a-f]{32}\) ?)+\.$`)
	for _, m := range messages(svc) {
		if g := startedRE.FindStringSubmatch(m); g != nil {
			n := 0
			fmt.Sscan(g[1], &n)
			started += n
		}
	}
	if started != 8 {
		t.Errorf("start events name %d tasks, want 6 and 2 replacements; events: %v", started, messages(svc))
	}
	if !hasEvent(svc, `^\(service web\) has started 6 tasks: (\(task [0-9a-f]{32}\) ?){6}\.$`) {
		t.Errorf("no event for the first six tasks; events: %v", messages(svc))
	}
	if !hasEvent(svc, `^\(service web\) \(deployment ecs-svc/\d{19}\) deployment completed\.$`) {
		t.Errorf("no deployment completed event; events: %v", messages(svc))
	}

	// Scale in by 3 with the default spread: one task left per zone.
	if _, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web"), DesiredCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("scale-in", func() bool { return len(e.tasks("web")) == 3 })
	if got := e.perZone(e.tasks("web")); got != "abc" {
		t.Errorf("after scale-in tasks per zone %q, want abc", got)
	}
	if svc := e.describe("web"); !hasEvent(svc, `^\(service web\) has stopped 3 running tasks: (\(task [0-9a-f]{32}\) ?){3}\.$`) {
		t.Errorf("no scale-in event; events: %v", messages(svc))
	}
}

func messages(svc types.Service) []string {
	var out []string
	for _, ev := range svc.Events {
		out = append(out, aws.ToString(ev.Message))
	}
	return out
}

func TestRollingDeploymentStaysWithinBounds(t *testing.T) {
	e := newSvcEnv(t, simfleet.Options{StartDelay: 30 * time.Millisecond, StopDelay: 30 * time.Millisecond}, "a", "b", "c")
	e.register("web", 128)
	e.register("web", 128) // web:2, the new version
	const desired, minPct, maxPct = 6, 50, 150
	_, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web:1"), DesiredCount: aws.Int32(desired),
		DeploymentConfiguration: &types.DeploymentConfiguration{MinimumHealthyPercent: aws.Int32(minPct), MaximumPercent: aws.Int32(maxPct)}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("steady state", e.steady("web"))
	up, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web"), TaskDefinition: aws.String("web:2")})
	if err != nil {
		t.Fatal(err)
	}
	// While the deployment runs, check the bounds at every poll: tasks not
	// yet STOPPED never exceed 150% (9), RUNNING tasks the service still
	// wants never fall below 50% (3).
	maxLive, minRunning := desired*maxPct/100, desired*minPct/100
	e.waitFor("the rolling deployment", func() bool {
		live, running := countAt(e.allTasks(), time.Time{})
		if live > maxLive || running < minRunning {
			t.Fatalf("poll: %d tasks not stopped (max %d), %d running (min %d)", live, maxLive, running, minRunning)
		}
		svc := e.describe("web")
		return len(svc.Deployments) == 1 && svc.Deployments[0].RolloutState == types.DeploymentRolloutStateCompleted &&
			strings.HasSuffix(aws.ToString(svc.TaskDefinition), ":2") && svc.RunningCount == desired
	})
	// Polls can miss short states, so replay the whole history from the
	// tasks' timestamps (created, started, stopping, stopped) and check the
	// bounds at every instant something changed.
	all := e.allTasks()
	var instants []time.Time
	for _, tk := range all {
		for _, ts := range []*time.Time{tk.CreatedAt, tk.StartedAt, tk.StoppingAt, tk.StoppedAt} {
			if ts != nil && !ts.Before(*up.Service.Deployments[0].CreatedAt) {
				instants = append(instants, *ts)
			}
		}
	}
	sort.Slice(instants, func(i, j int) bool { return instants[i].Before(instants[j]) })
	bothVersions := false
	for _, at := range instants {
		live, running := countAt(all, at)
		if live > maxLive || running < minRunning {
			t.Fatalf("at %s: %d tasks not stopped (max %d), %d running (min %d)", at.Format(time.RFC3339Nano), live, maxLive, running, minRunning)
		}
		v1, v2 := versionsAt(all, at)
		bothVersions = bothVersions || v1 > 0 && v2 > 0
	}
	if len(instants) < 12 || !bothVersions {
		t.Errorf("replayed %d instants (both versions running at once: %v); want the whole rollout", len(instants), bothVersions)
	}
	for _, tk := range e.tasks("web") {
		if !strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":2") {
			t.Errorf("task %s still runs %s", aws.ToString(tk.TaskArn), aws.ToString(tk.TaskDefinitionArn))
		}
	}
}

// countAt counts, at instant at (zero: now, from the last statuses), the
// tasks not yet STOPPED and the RUNNING tasks not yet asked to stop.
func countAt(all []types.Task, at time.Time) (live, running int) {
	for _, tk := range all {
		if at.IsZero() {
			if aws.ToString(tk.LastStatus) != "STOPPED" {
				live++
			}
			if aws.ToString(tk.LastStatus) == "RUNNING" && aws.ToString(tk.DesiredStatus) == "RUNNING" {
				running++
			}
			continue
		}
		if during(at, tk.CreatedAt, tk.StoppedAt) {
			live++
		}
		end := tk.StoppingAt
		if end == nil {
			end = tk.StoppedAt
		}
		if during(at, tk.StartedAt, end) {
			running++
		}
	}
	return live, running
}

// versionsAt counts the tasks of revisions 1 and 2 running at instant at.
func versionsAt(all []types.Task, at time.Time) (v1, v2 int) {
	for _, tk := range all {
		end := tk.StoppingAt
		if end == nil {
			end = tk.StoppedAt
		}
		if !during(at, tk.StartedAt, end) {
			continue
		}
		if strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":1") {
			v1++
		} else {
			v2++
		}
	}
	return v1, v2
}

// during reports whether at lies in [from, to); a nil from never began, a
// nil to has not ended.
func during(at time.Time, from, to *time.Time) bool {
	return from != nil && !at.Before(*from) && (to == nil || at.Before(*to))
}

// allTasks lists every task of the cluster (desired RUNNING and STOPPED).
func (e *svcEnv) allTasks() []types.Task {
	e.t.Helper()
	var arns []string
	for _, ds := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
		var next *string
		for {
			lt, err := e.Admin.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String(e.Cluster), DesiredStatus: ds, NextToken: next})
			if err != nil {
				e.t.Fatal(err)
			}
			arns = append(arns, lt.TaskArns...)
			if next = lt.NextToken; next == nil {
				break
			}
		}
	}
	// A task whose desired status changed between the two lists is in
	// both: keep it once.
	sort.Strings(arns)
	arns = slices.Compact(arns)
	var out []types.Task
	for i := 0; i < len(arns); i += 100 {
		dt, err := e.Admin.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String(e.Cluster), Tasks: arns[i:min(i+100, len(arns))]})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, dt.Tasks...)
	}
	return out
}

func TestCircuitBreakerRollsBack(t *testing.T) {
	// Revision 2 of "web" cannot start (a pull failure on every host).
	e := newSvcEnv(t, simfleet.Options{Behave: func(tk *api.Task) simfleet.Behaviour {
		return simfleet.Behaviour{FailToStart: tk.Family == "web" && tk.Version == "2"}
	}}, "a", "b", "c")
	e.register("web", 128)
	e.register("web", 128)
	_, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web:1"), DesiredCount: aws.Int32(2),
		DeploymentConfiguration: &types.DeploymentConfiguration{DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("steady state", e.steady("web"))
	up, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web"), TaskDefinition: aws.String("web:2")})
	if err != nil {
		t.Fatal(err)
	}
	failedID := aws.ToString(up.Service.Deployments[0].Id)
	e.waitFor("the rollback to complete", func() bool {
		svc := e.describe("web")
		return strings.HasSuffix(aws.ToString(svc.TaskDefinition), ":1") && len(svc.Deployments) == 1 &&
			svc.Deployments[0].RolloutState == types.DeploymentRolloutStateCompleted && aws.ToString(svc.Deployments[0].Id) != failedID
	})
	svc := e.describe("web")
	// threshold = clamp(ceil(0.5*2), 3, 200) = 3 failed tasks
	if !hasEvent(svc, fmt.Sprintf(`^\(service web\) \(deployment %s\) deployment failed: tasks failed to start\.$`, regexp.QuoteMeta(failedID))) {
		t.Errorf("no deployment failed event; events: %v", messages(svc))
	}
	if !hasEvent(svc, `rolling back to deployment ecs-svc/\d{19}`) {
		t.Errorf("no rollback event; events: %v", messages(svc))
	}
	if !hasEvent(svc, `^\(service web\) is unable to consistently start tasks successfully\.`) {
		t.Errorf("no launch backoff event; events: %v", messages(svc))
	}
	failed := 0
	for _, tk := range e.allTasks() {
		if strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":2") {
			failed++
			if aws.ToString(tk.LastStatus) != "STOPPED" {
				t.Errorf("a revision 2 task is %s", aws.ToString(tk.LastStatus))
			}
		}
	}
	if failed < 3 {
		t.Errorf("%d revision 2 tasks were tried, want at least the threshold 3", failed)
	}
	for _, tk := range e.tasks("web") {
		if !strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":1") || aws.ToString(tk.LastStatus) != "RUNNING" {
			t.Errorf("after rollback task %s runs %s (%s)", aws.ToString(tk.TaskArn), aws.ToString(tk.TaskDefinitionArn), aws.ToString(tk.LastStatus))
		}
	}
}

func TestDrainingReplacesServiceTasksOnly(t *testing.T) {
	e := newSvcEnv(t, simfleet.Options{}, "a", "b", "c")
	e.register("web", 128)
	e.register("batch", 128)
	a := e.Fleet.Instances()[0].Arn
	run, err := e.Admin.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String(e.Cluster), TaskDefinition: aws.String("batch"), ContainerInstances: []string{a}})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("StartTask: %v %+v", err, run)
	}
	standalone := aws.ToString(run.Tasks[0].TaskArn)
	if _, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("steady state", e.steady("web"))
	if _, err := e.Admin.UpdateContainerInstancesState(e.ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String(e.Cluster),
		ContainerInstances: []string{a}, Status: types.ContainerInstanceStatusDraining}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the draining instance to lose its service task", func() bool {
		ts := e.tasks("web")
		running := 0
		for _, tk := range ts {
			if aws.ToString(tk.ContainerInstanceArn) == a {
				return false
			}
			if aws.ToString(tk.LastStatus) == "RUNNING" {
				running++
			}
		}
		return running == 3
	})
	dt, err := e.Admin.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String(e.Cluster), Tasks: []string{standalone}})
	if err != nil || aws.ToString(dt.Tasks[0].LastStatus) != "RUNNING" || aws.ToString(dt.Tasks[0].DesiredStatus) != "RUNNING" {
		t.Fatalf("standalone task on the draining instance: %v %+v, want it left RUNNING", err, dt)
	}
	if got := e.perZone(e.tasks("web")); got != "bbc" && got != "bcc" {
		t.Errorf("service tasks per zone %q, want them on b and c only", got)
	}
}

func TestDaemonServiceCoversLateJoiners(t *testing.T) {
	e := newSvcEnv(t, simfleet.Options{}, "a", "b")
	e.register("agentd", 64)
	_, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("agentd"),
		TaskDefinition: aws.String("agentd"), SchedulingStrategy: types.SchedulingStrategyDaemon,
		PlacementConstraints: []types.PlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:ecs.availability-zone != z")}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("one task per instance", func() bool { return e.describe("agentd").RunningCount == 2 && e.steady("agentd")() })
	// A new instance joins (and one outside the constraint): it gets its task.
	late, err := e.Fleet.Add(e.ctx, 1, simfleet.Zones(0, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Fleet.Add(e.ctx, 1, simfleet.Zones(0, "z")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the late instance's task", func() bool {
		svc := e.describe("agentd")
		return svc.RunningCount == 3 && svc.DesiredCount == 3
	})
	perInstance := map[string]int{}
	for _, tk := range e.tasks("agentd") {
		perInstance[aws.ToString(tk.ContainerInstanceArn)]++
	}
	if len(perInstance) != 3 || perInstance[late[0].Arn] != 1 {
		t.Fatalf("daemon tasks per instance %v, want one on each of 3 (incl. %s)", perInstance, late[0].Arn)
	}
	if _, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("agentd"), DesiredCount: aws.Int32(1)}); err == nil {
		t.Error("desiredCount accepted for a DAEMON service")
	}
	// A new revision replaces the daemon instance by instance (0%/100%):
	// never two of its tasks on one instance.
	e.register("agentd", 64)
	if _, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("agentd"), TaskDefinition: aws.String("agentd:2")}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the daemon's new revision everywhere", func() bool {
		live := map[string]int{}
		for _, tk := range e.allTasks() {
			if aws.ToString(tk.Group) == "service:agentd" && aws.ToString(tk.LastStatus) != "STOPPED" {
				live[aws.ToString(tk.ContainerInstanceArn)]++
			}
		}
		for arn, n := range live {
			if n > 1 {
				t.Fatalf("instance %s has %d daemon tasks at once", arn, n)
			}
		}
		ts := e.tasks("agentd")
		for _, tk := range ts {
			if !strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":2") || aws.ToString(tk.LastStatus) != "RUNNING" {
				return false
			}
		}
		return len(ts) == 3 && e.steady("agentd")()
	})
}

func TestServiceEventsAndDeleteRules(t *testing.T) {
	e := newSvcEnv(t, simfleet.Options{}, "a", "b", "c")
	e.register("web", 128)
	_, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(4),
		PlacementConstraints: []types.PlacementConstraint{{Type: "distinctInstance"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("the unable-to-place event", func() bool {
		return hasEvent(e.describe("web"), `^service web was unable to place a task because no container instance met all of its requirements\. The closest matching \(container-instance [0-9a-f]{32}\) already runs a task of this service \(distinctInstance placement constraint\)\. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide\.$`)
	})
	if _, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(1)}); err == nil || !strings.Contains(err.Error(), "not idempotent") {
		t.Errorf("second CreateService with the same name: %v, want not idempotent", err)
	}
	if _, err := e.Admin.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web")}); err == nil ||
		!strings.Contains(err.Error(), "scaled above 0") {
		t.Fatalf("DeleteService of a running service: %v, want InvalidParameterException", err)
	}
	del, err := e.Admin.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web"), Force: aws.Bool(true)})
	if err != nil || aws.ToString(del.Service.Status) != "DRAINING" {
		t.Fatalf("forced DeleteService: %v %+v, want DRAINING", err, del)
	}
	e.waitFor("INACTIVE", func() bool { return aws.ToString(e.describe("web").Status) == "INACTIVE" })
	if ts := e.tasks("web"); len(ts) != 0 {
		t.Errorf("%d tasks left after delete", len(ts))
	}
	ls, err := e.Admin.ListServices(e.ctx, &ecs.ListServicesInput{Cluster: aws.String(e.Cluster)})
	if err != nil || len(ls.ServiceArns) != 0 {
		t.Errorf("ListServices after delete: %v %v, want none", ls.ServiceArns, err)
	}
	svc := e.describe("web")
	for i := 1; i < len(svc.Events); i++ {
		if svc.Events[i].CreatedAt.After(*svc.Events[i-1].CreatedAt) {
			t.Fatalf("events not newest first: %v", messages(svc))
		}
	}
	// A deleted service's name can be used again.
	if _, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(0)}); err != nil {
		t.Errorf("re-creating a deleted service: %v", err)
	}
	if _, err := e.Admin.DeleteService(e.ctx, &ecs.DeleteServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web")}); err != nil {
		t.Errorf("deleting a service scaled to 0 without force: %v", err)
	}
}
