package cluster_test

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// lab is the state the walk-through builds.
type lab struct {
	re           *runningEndpoint
	admin        *ecs.Client
	agentA       *ecs.Client
	agentB       *ecs.Client
	agentAKey    string
	agentASecret string
	taskDefArn   string
	instA, instB string
	tasks        []types.Task
}

func loadTaskDefinition(t *testing.T) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	b, err := os.ReadFile("testdata/web-taskdef.json")
	if err != nil {
		t.Fatal(err)
	}
	// The console's JSON uses the ECS member names, which match the SDK's
	// field names without regard to case.
	var in ecs.RegisterTaskDefinitionInput
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatalf("decode console task definition: %v", err)
	}
	return &in
}

func resources(cpu, mem int32) []types.Resource {
	return []types.Resource{
		{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: cpu},
		{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: mem},
		{Name: aws.String("PORTS"), Type: aws.String("STRINGSET"), StringSetValue: []string{"22", "2375", "2376", "51678", "51679"}},
		{Name: aws.String("PORTS_UDP"), Type: aws.String("STRINGSET"), StringSetValue: []string{}},
	}
}

func remaining(ci types.ContainerInstance, name string) int32 {
	for _, r := range ci.RemainingResources {
		if aws.ToString(r.Name) == name {
			return r.IntegerValue
		}
	}
	return -1
}

// buildLab walks the ECS getting-started path up to three running tasks.
func buildLab(t *testing.T, re *runningEndpoint) *lab {
	ctx := context.Background()
	l := &lab{re: re, admin: re.admin()}
	cc, err := l.admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab")})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	if got, want := aws.ToString(cc.Cluster.ClusterArn), "arn:aws:ecs:us-test-1:123456789012:cluster/lab"; got != want {
		t.Fatalf("cluster ARN = %s, want %s", got, want)
	}
	rtd, err := l.admin.RegisterTaskDefinition(ctx, loadTaskDefinition(t))
	if err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	l.taskDefArn = aws.ToString(rtd.TaskDefinition.TaskDefinitionArn)
	if l.taskDefArn != "arn:aws:ecs:us-test-1:123456789012:task-definition/web:1" || rtd.TaskDefinition.Revision != 1 {
		t.Fatalf("task definition ARN = %s revision %d, want web:1", l.taskDefArn, rtd.TaskDefinition.Revision)
	}
	l.agentAKey, l.agentASecret = newKey(t, re.ep, auth.RoleAgent)
	agentBKey, agentBSecret := newKey(t, re.ep, auth.RoleAgent)
	l.agentA, l.agentB = re.client(l.agentAKey, l.agentASecret), re.client(agentBKey, agentBSecret)
	// Instance A is short of memory, B of CPU: A takes two tasks, B one.
	ra, err := l.agentA.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String("lab"), TotalResources: resources(2048, 800),
		Attributes:  []types.Attribute{{Name: aws.String("ecs.os-type"), Value: aws.String("linux")}},
		VersionInfo: &types.VersionInfo{AgentVersion: aws.String("1.0.0"), DockerVersion: aws.String("containerd")},
	})
	if err != nil {
		t.Fatalf("RegisterContainerInstance A: %v", err)
	}
	rb, err := l.agentB.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String("lab"), TotalResources: resources(512, 4096),
	})
	if err != nil {
		t.Fatalf("RegisterContainerInstance B: %v", err)
	}
	l.instA, l.instB = aws.ToString(ra.ContainerInstance.ContainerInstanceArn), aws.ToString(rb.ContainerInstance.ContainerInstanceArn)
	run, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{
		Cluster: aws.String("lab"), TaskDefinition: aws.String("web"), Count: aws.Int32(3), StartedBy: aws.String("walkthrough"),
		// binpack on memory fills A (least memory) before B, so the
		// tasks land as the tests below expect; the default is random.
		PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("memory")}},
	})
	if err != nil {
		t.Fatalf("RunTask: %v", err)
	}
	if len(run.Tasks) != 3 || len(run.Failures) != 0 {
		t.Fatalf("RunTask placed %d tasks with failures %+v, want 3 and none", len(run.Tasks), run.Failures)
	}
	l.tasks = run.Tasks
	return l
}

var taskArnRE = regexp.MustCompile(`^arn:aws:ecs:us-test-1:123456789012:task/lab/[0-9a-f]{32}$`)

func TestWalkthrough(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	ctx := context.Background()

	// The task definition reads back as registered, with ECS's defaults.
	dtd, err := l.admin.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web:1"), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
	if err != nil {
		t.Fatalf("DescribeTaskDefinition: %v", err)
	}
	web := dtd.TaskDefinition.ContainerDefinitions[0]
	if hp := web.PortMappings[0].HostPort; hp == nil || *hp != 0 || web.HealthCheck == nil || web.LogConfiguration == nil ||
		web.LogConfiguration.LogDriver != types.LogDriverJsonFile || len(dtd.Tags) != 1 || dtd.TaskDefinition.Status != types.TaskDefinitionStatusActive {
		t.Fatalf("described task definition lost members: %+v tags %+v", web, dtd.Tags)
	}
	if lc := dtd.TaskDefinition.ContainerDefinitions[1]; aws.ToBool(lc.Essential) || lc.DependsOn[0].Condition != types.ContainerConditionHealthy {
		t.Fatalf("second container = %+v, want non-essential depending on web HEALTHY", lc)
	}
	ltd, err := l.admin.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("web")})
	if err != nil || !reflect.DeepEqual(ltd.TaskDefinitionArns, []string{l.taskDefArn}) {
		t.Fatalf("ListTaskDefinitions = %v, %v; want [%s]", ltd, err, l.taskDefArn)
	}
	fams, err := l.admin.ListTaskDefinitionFamilies(ctx, &ecs.ListTaskDefinitionFamiliesInput{})
	if err != nil || !reflect.DeepEqual(fams.Families, []string{"web"}) {
		t.Fatalf("ListTaskDefinitionFamilies = %v, %v", fams, err)
	}

	// First fit: two tasks on A, the third on B.
	want := []string{l.instA, l.instA, l.instB}
	for i, task := range l.tasks {
		if !taskArnRE.MatchString(aws.ToString(task.TaskArn)) {
			t.Errorf("task ARN %s does not look like an ECS task ARN", aws.ToString(task.TaskArn))
		}
		if got := aws.ToString(task.ContainerInstanceArn); got != want[i] {
			t.Errorf("task %d placed on %s, want %s", i, got, want[i])
		}
		if aws.ToString(task.LastStatus) != "PROVISIONING" || aws.ToString(task.DesiredStatus) != "RUNNING" || len(task.Containers) != 2 {
			t.Errorf("task %d: last %s desired %s with %d containers", i, aws.ToString(task.LastStatus), aws.ToString(task.DesiredStatus), len(task.Containers))
		}
	}
	// Nothing fits any more: A lacks memory, B lacks CPU.
	full, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String(l.taskDefArn), Count: aws.Int32(2)})
	if err != nil {
		t.Fatalf("RunTask when full: %v", err)
	}
	gotFailures := map[string]string{}
	for _, f := range full.Failures {
		gotFailures[aws.ToString(f.Arn)] = aws.ToString(f.Reason)
	}
	if len(full.Tasks) != 0 || !reflect.DeepEqual(gotFailures, map[string]string{l.instA: "RESOURCE:MEMORY", l.instB: "RESOURCE:CPU"}) {
		t.Fatalf("RunTask when full: %d tasks, failures %v; want none and A MEMORY, B CPU", len(full.Tasks), gotFailures)
	}
	// A static host port that every instance reserves never fits.
	ssh := &ecs.RegisterTaskDefinitionInput{Family: aws.String("ssh"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("ssh"), Image: aws.String("busybox"), Memory: aws.Int32(8),
		PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(22), HostPort: aws.Int32(22)}},
	}}}
	if _, err := l.admin.RegisterTaskDefinition(ctx, ssh); err != nil {
		t.Fatalf("RegisterTaskDefinition ssh: %v", err)
	}
	ports, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String("ssh")})
	if err != nil || len(ports.Failures) != 2 || aws.ToString(ports.Failures[0].Reason) != "RESOURCE:PORTS" {
		t.Fatalf("RunTask ssh = %+v, %v; want RESOURCE:PORTS failures", ports, err)
	}

	// Stop one task as the operator, then report state as the agents would.
	stopped, err := l.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, Reason: aws.String("scale in")})
	if err != nil || aws.ToString(stopped.Task.DesiredStatus) != "STOPPED" || aws.ToString(stopped.Task.StoppedReason) != "scale in" {
		t.Fatalf("StopTask = %+v, %v", stopped, err)
	}
	submitRunning := &ecs.SubmitTaskStateChangeInput{
		Cluster: aws.String("lab"), Task: l.tasks[1].TaskArn, Status: aws.String("RUNNING"),
		PullStartedAt: aws.Time(time.Unix(1700000000, 0)), PullStoppedAt: aws.Time(time.Unix(1700000005, 0)),
		Containers: []types.ContainerStateChange{{
			ContainerName: aws.String("web"), Status: aws.String("RUNNING"), RuntimeId: aws.String("rt-web"),
			NetworkBindings: []types.NetworkBinding{{BindIP: aws.String("0.0.0.0"), ContainerPort: aws.Int32(80), HostPort: aws.Int32(32768), Protocol: types.TransportProtocolTcp}},
		}},
	}
	for i := 0; i < 2; i++ { // resubmitting is harmless
		if _, err := l.agentA.SubmitTaskStateChange(ctx, submitRunning); err != nil {
			t.Fatalf("SubmitTaskStateChange RUNNING (try %d): %v", i+1, err)
		}
	}
	if _, err := l.agentA.SubmitContainerStateChange(ctx, &ecs.SubmitContainerStateChangeInput{
		Cluster: aws.String("lab"), Task: l.tasks[1].TaskArn, ContainerName: aws.String("log-router"), Status: aws.String("RUNNING"),
	}); err != nil {
		t.Fatalf("SubmitContainerStateChange: %v", err)
	}
	if _, err := l.agentA.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{
		Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, Status: aws.String("STOPPED"), Reason: aws.String("ignored: the operator's reason stays"),
		Containers: []types.ContainerStateChange{
			{ContainerName: aws.String("web"), Status: aws.String("STOPPED"), ExitCode: aws.Int32(0)},
			{ContainerName: aws.String("log-router"), Status: aws.String("STOPPED"), ExitCode: aws.Int32(137), Reason: aws.String("killed")},
		},
	}); err != nil {
		t.Fatalf("SubmitTaskStateChange STOPPED: %v", err)
	}
	dt, err := l.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("lab"), Tasks: []string{*l.tasks[0].TaskArn, *l.tasks[1].TaskArn, "0123456789abcdef0123456789abcdef"}})
	if err != nil {
		t.Fatalf("DescribeTasks: %v", err)
	}
	if len(dt.Tasks) != 2 || len(dt.Failures) != 1 || aws.ToString(dt.Failures[0].Reason) != "MISSING" {
		t.Fatalf("DescribeTasks: %d tasks, failures %+v; want 2 and one MISSING", len(dt.Tasks), dt.Failures)
	}
	t0, t1 := dt.Tasks[0], dt.Tasks[1]
	if aws.ToString(t0.LastStatus) != "STOPPED" || t0.StoppedAt == nil || aws.ToString(t0.StoppedReason) != "scale in" ||
		aws.ToInt32(t0.Containers[1].ExitCode) != 137 || aws.ToString(t0.Containers[1].Reason) != "killed" {
		t.Errorf("stopped task = last %s stoppedAt %v reason %q containers %+v", aws.ToString(t0.LastStatus), t0.StoppedAt, aws.ToString(t0.StoppedReason), t0.Containers)
	}
	if aws.ToString(t1.LastStatus) != "RUNNING" || t1.StartedAt == nil || !aws.ToTime(t1.PullStartedAt).Equal(time.Unix(1700000000, 0)) ||
		len(t1.Containers[0].NetworkBindings) != 1 || aws.ToInt32(t1.Containers[0].NetworkBindings[0].HostPort) != 32768 ||
		aws.ToString(t1.Containers[0].RuntimeId) != "rt-web" || aws.ToString(t1.Containers[1].LastStatus) != "RUNNING" {
		t.Errorf("running task = last %s startedAt %v pullStartedAt %v containers %+v", aws.ToString(t1.LastStatus), t1.StartedAt, t1.PullStartedAt, t1.Containers)
	}

	// The stopped task's resources are back on A; counts follow.
	dci, err := l.admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("lab"), ContainerInstances: []string{l.instA, l.instB}})
	if err != nil {
		t.Fatalf("DescribeContainerInstances: %v", err)
	}
	a := dci.ContainerInstances[0]
	if remaining(a, "MEMORY") != 800-384 || remaining(a, "CPU") != 2048-384 || a.RunningTasksCount != 1 || a.PendingTasksCount != 0 || aws.ToString(a.Status) != "ACTIVE" {
		t.Errorf("instance A: remaining cpu %d memory %d, running %d pending %d", remaining(a, "CPU"), remaining(a, "MEMORY"), a.RunningTasksCount, a.PendingTasksCount)
	}
	if b := dci.ContainerInstances[1]; remaining(b, "CPU") != 512-384 || b.PendingTasksCount != 1 {
		t.Errorf("instance B: remaining cpu %d, pending %d", remaining(b, "CPU"), b.PendingTasksCount)
	}
	again, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String("web")})
	if err != nil || len(again.Tasks) != 1 || aws.ToString(again.Tasks[0].ContainerInstanceArn) != l.instA {
		t.Fatalf("RunTask after a stop = %+v, %v; want one task on A", again, err)
	}
	lt, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("lab"), ContainerInstance: aws.String(l.instA)})
	if err != nil || len(lt.TaskArns) != 2 {
		t.Errorf("ListTasks on A (desired RUNNING) = %v, %v; want 2", lt, err)
	}
	lts, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("lab"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil || !reflect.DeepEqual(lts.TaskArns, []string{*l.tasks[0].TaskArn}) {
		t.Errorf("ListTasks STOPPED = %v, %v", lts, err)
	}
	lw, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("lab"), StartedBy: aws.String("walkthrough"), Family: aws.String("web")})
	if err != nil || len(lw.TaskArns) != 2 {
		t.Errorf("ListTasks startedBy walkthrough = %v, %v; want the 2 not stopped", lw, err)
	}
	dc, err := l.admin.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"lab", "nope"}})
	if err != nil || len(dc.Clusters) != 1 || dc.Clusters[0].RegisteredContainerInstancesCount != 2 ||
		dc.Clusters[0].RunningTasksCount != 1 || dc.Clusters[0].PendingTasksCount != 2 || len(dc.Failures) != 1 {
		t.Errorf("DescribeClusters = %+v, %v", dc, err)
	}
	dpe, err := l.agentA.DiscoverPollEndpoint(ctx, &ecs.DiscoverPollEndpointInput{Cluster: aws.String("lab"), ContainerInstance: aws.String(l.instA)})
	if err != nil || aws.ToString(dpe.Endpoint) != re.url {
		t.Errorf("DiscoverPollEndpoint = %v, %v; want %s", dpe, err, re.url)
	}
	// Draining takes an instance out of placement.
	if _, err := l.admin.UpdateContainerInstancesState(ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String("lab"), ContainerInstances: []string{l.instA}, Status: types.ContainerInstanceStatusDraining}); err != nil {
		t.Fatalf("UpdateContainerInstancesState: %v", err)
	}
	// An agent restart (re-registration with its ARN) keeps the instance draining.
	rr, err := l.agentA.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstanceArn: aws.String(l.instA), TotalResources: resources(2048, 800)})
	if err != nil || aws.ToString(rr.ContainerInstance.Status) != "DRAINING" || aws.ToString(rr.ContainerInstance.ContainerInstanceArn) != l.instA {
		t.Fatalf("re-registration of a draining instance = %+v, %v; want the same ARN, still DRAINING", rr, err)
	}
	drained, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String("web")})
	if err != nil || len(drained.Tasks) != 0 || len(drained.Failures) != 1 || aws.ToString(drained.Failures[0].Arn) != l.instB {
		t.Errorf("RunTask with A draining = %+v, %v; want only B considered", drained, err)
	}
	// Attributes.
	if _, err := l.admin.PutAttributes(ctx, &ecs.PutAttributesInput{Cluster: aws.String("lab"), Attributes: []types.Attribute{{Name: aws.String("stack"), Value: aws.String("blue"), TargetId: aws.String(l.instB)}}}); err != nil {
		t.Fatalf("PutAttributes: %v", err)
	}
	la, err := l.admin.ListAttributes(ctx, &ecs.ListAttributesInput{Cluster: aws.String("lab"), TargetType: types.TargetTypeContainerInstance, AttributeName: aws.String("stack")})
	if err != nil || len(la.Attributes) != 1 || aws.ToString(la.Attributes[0].TargetId) != l.instB {
		t.Errorf("ListAttributes = %+v, %v", la, err)
	}
	if _, err := l.admin.DeleteAttributes(ctx, &ecs.DeleteAttributesInput{Cluster: aws.String("lab"), Attributes: []types.Attribute{{Name: aws.String("stack"), TargetId: aws.String(l.instB)}}}); err != nil {
		t.Fatalf("DeleteAttributes: %v", err)
	}
	// A cluster with instances cannot be deleted.
	if _, err := l.admin.DeleteCluster(ctx, &ecs.DeleteClusterInput{Cluster: aws.String("lab")}); errorCode(err) != "ClusterContainsContainerInstancesException" {
		t.Errorf("DeleteCluster with instances: %v", err)
	}
}

func TestAuthentication(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	ctx := context.Background()
	before := snapshot(t, re)

	cases := []struct {
		name string
		err  error
		want string
	}{}
	add := func(name string, err error, want string) {
		cases = append(cases, struct {
			name string
			err  error
			want string
		}{name, err, want})
	}
	_, err := re.client(re.adminID, "wrong-secret-wrong-secret-wrong-secret00").ListClusters(ctx, &ecs.ListClustersInput{})
	add("wrong secret", err, "InvalidSignatureException")
	_, err = re.client("BKUNKNOWNUNKNOWNUNKN", re.adminSecret).ListClusters(ctx, &ecs.ListClustersInput{})
	add("unknown key", err, "UnrecognizedClientException")
	_, err = l.agentA.RegisterTaskDefinition(ctx, loadTaskDefinition(t))
	add("agent key registering a task definition", err, "AccessDeniedException")
	_, err = l.agentB.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, Status: aws.String("RUNNING")})
	add("agent key submitting state for another instance's task", err, "AccessDeniedException")
	_, err = l.agentB.SubmitContainerStateChange(ctx, &ecs.SubmitContainerStateChangeInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, ContainerName: aws.String("web"), Status: aws.String("RUNNING")})
	add("agent key submitting container state for another instance's task", err, "AccessDeniedException")
	_, err = l.agentB.DeregisterContainerInstance(ctx, &ecs.DeregisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstance: aws.String(l.instA), Force: aws.Bool(true)})
	add("agent key deregistering another instance", err, "AccessDeniedException")
	_, err = l.agentB.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstanceArn: aws.String(l.instA), TotalResources: resources(1, 1)})
	add("agent key re-registering another instance", err, "AccessDeniedException")
	for _, c := range cases {
		if got := errorCode(c.err); got != c.want {
			t.Errorf("%s: error %q, want %s", c.name, got, c.want)
		}
	}

	// Requests whose signature is incomplete, stale, tampered with or
	// scoped elsewhere are TestHostileInput's, for every API.
	if after := snapshot(t, re); !reflect.DeepEqual(before, after) {
		t.Errorf("refused requests changed the store")
	}
	// A revoked key is unknown from then on.
	id, secret := newKey(t, re.ep, auth.RoleAdmin)
	if _, err := re.client(id, secret).ListClusters(ctx, &ecs.ListClustersInput{}); err != nil {
		t.Fatalf("new admin key: %v", err)
	}
	if err := re.ep.Keys().Revoke(id); err != nil {
		t.Fatal(err)
	}
	if _, err := re.client(id, secret).ListClusters(ctx, &ecs.ListClustersInput{}); errorCode(err) != "UnrecognizedClientException" {
		t.Errorf("revoked key: %v, want UnrecognizedClientException", err)
	}
}
