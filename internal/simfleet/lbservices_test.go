package simfleet_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// lbEnv is a service environment with a load balancer, a listener and a
// target group (deregistration delay 1 s) on the endpoint. The test plays
// the data plane: it writes the health a berth-lb would report (berth-lb
// itself is tested with HAProxy in pkg/lb and end to end elsewhere).
type lbEnv struct {
	*svcEnv
	elb  *elb.Client
	tg   string
	tgID string
}

func newLBEnv(t *testing.T) *lbEnv {
	e := newSvcEnv(t, simfleet.Options{})
	if _, err := e.Fleet.Add(e.ctx, 2, map[string]string{"berth.host-address": "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	id, secret, err := e.Endpoint.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := elb.New(elb.Options{Region: simfleet.Region, BaseEndpoint: aws.String(e.URL), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
	lb, err := c.CreateLoadBalancer(e.ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-berth"}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := c.CreateTargetGroup(e.ctx, &elb.CreateTargetGroupInput{Name: aws.String("web"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumInstance})
	if err != nil {
		t.Fatal(err)
	}
	tgArn := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	if _, err := c.ModifyTargetGroupAttributes(e.ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(tgArn),
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateListener(e.ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(8080),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgArn)}}}); err != nil {
		t.Fatal(err)
	}
	return &lbEnv{svcEnv: e, elb: c, tg: tgArn, tgID: arn.ResourceID(tgArn)}
}

// webDef registers a revision of "web" mapping container port 8080 to a
// dynamic host port.
func (e *lbEnv) webDef() string {
	e.t.Helper()
	out, err := e.Admin.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64),
			Essential: aws.Bool(true), PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(8080)}}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

// health is DescribeTargetHealth's state per "<instance id>:<port>".
func (e *lbEnv) health() map[string]elbtypes.TargetHealthStateEnum {
	e.t.Helper()
	out, err := e.elb.DescribeTargetHealth(e.ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(e.tg)})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]elbtypes.TargetHealthStateEnum{}
	for _, d := range out.TargetHealthDescriptions {
		m[target(aws.ToString(d.Target.Id), aws.ToInt32(d.Target.Port))] = d.TargetHealth.State
	}
	return m
}

func target(id string, port int32) string { return id + ":" + strconv.Itoa(int(port)) }

// report writes what a data plane would report for the group's registered
// targets: state for those in only (all when only is nil), others left.
func (e *lbEnv) report(state string, only func(key string) bool) {
	e.t.Helper()
	err := e.Endpoint.Store().Update(func(tx store.Tx) error {
		var ts []*records.Target
		if err := records.Each(tx, records.Targets, e.tgID+"/", func(t *records.Target) error { ts = append(ts, t); return nil }); err != nil {
			return err
		}
		for _, t := range ts {
			if !t.DrainingUntil.IsZero() || (only != nil && !only(target(t.ID, t.Port))) {
				continue
			}
			t.Health = &records.TargetReport{State: state, ReportedAt: time.Now().UTC(), Reporter: "test"}
			if state == "unhealthy" {
				t.Health.Reason, t.Health.Description = "Target.ResponseCodeMismatch", "Health checks failed with these codes: [500]"
			}
			if err := records.Put(tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// running are the service's tasks desired RUNNING by status.
func (e *lbEnv) byStatus(name string) map[string][]types.Task {
	out := map[string][]types.Task{}
	for _, t := range e.tasks(name) {
		out[aws.ToString(t.LastStatus)] = append(out[aws.ToString(t.LastStatus)], t)
	}
	return out
}

func TestServiceBehindLoadBalancer(t *testing.T) {
	e := newLBEnv(t)
	v1 := e.webDef()
	_, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String(v1), DesiredCount: aws.Int32(2),
		LoadBalancers: []types.LoadBalancer{{TargetGroupArn: aws.String(e.tg), ContainerName: aws.String("app"), ContainerPort: aws.Int32(8080)}}})
	if err != nil {
		t.Fatal(err)
	}
	// Each RUNNING task is registered at its instance and dynamic host port.
	e.waitFor("2 targets initial", func() bool {
		h := e.health()
		return len(h) == 2 && h[firstKey(h)] == elbtypes.TargetHealthStateEnumInitial
	})
	for _, task := range e.tasks("web") {
		b := task.Containers[0].NetworkBindings
		key := target(arn.ResourceID(aws.ToString(task.ContainerInstanceArn)), aws.ToInt32(b[0].HostPort))
		if _, ok := e.health()[key]; !ok || aws.ToInt32(b[0].HostPort) < 32768 {
			t.Fatalf("task %s (binding %+v) is not registered as %s: %v", aws.ToString(task.TaskArn), b, key, e.health())
		}
	}
	// Past the container grace (100 ms here) the deployment still waits
	// for the load balancer.
	time.Sleep(500 * time.Millisecond)
	if svc := e.describe("web"); svc.Deployments[0].RolloutState != types.DeploymentRolloutStateInProgress {
		t.Fatalf("deployment %s before any target was healthy", svc.Deployments[0].RolloutState)
	}
	e.report("healthy", nil)
	e.waitFor("steady", e.steady("web"))
	if svc := e.describe("web"); eventTotal(svc, `^\(service web\) registered (\d+) targets in \(target-group `) != 2 {
		t.Fatalf("no registration event: %q", messages(svc))
	}

	// A rolling deployment: old targets stay until the new ones are healthy.
	old := e.health()
	v2 := e.webDef()
	if _, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web"), TaskDefinition: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("4 targets", func() bool { return len(e.health()) == 4 })
	time.Sleep(500 * time.Millisecond)
	for k, s := range e.health() {
		if _, wasOld := old[k]; wasOld && s != elbtypes.TargetHealthStateEnumHealthy {
			t.Fatalf("old target %s is %s before any new one is healthy", k, s)
		}
	}
	e.report("healthy", nil)
	// Old tasks are deregistered, drain (DEACTIVATING, still not told to
	// stop), then stop.
	e.waitFor("old targets draining", func() bool {
		h := e.health()
		for k := range old {
			if h[k] != elbtypes.TargetHealthStateEnumDraining {
				return false
			}
		}
		return true
	})
	if deact := e.byStatus("web")["DEACTIVATING"]; len(deact) != 2 || aws.ToString(deact[0].DesiredStatus) != "RUNNING" {
		t.Fatalf("draining tasks: %+v", deact)
	}
	e.waitFor("steady on v2", e.steady("web"))
	e.waitFor("old targets gone", func() bool { return len(e.health()) == 2 })
	for _, task := range e.allTasks() {
		if aws.ToString(task.TaskDefinitionArn) == v1 {
			if aws.ToString(task.LastStatus) != "STOPPED" || task.StoppingAt == nil || task.StoppedAt == nil {
				t.Fatalf("v1 task %s: %s", aws.ToString(task.TaskArn), aws.ToString(task.LastStatus))
			}
		}
	}
	if svc := e.describe("web"); eventTotal(svc, `has begun draining connections on (\d+) tasks\.`) != 2 || eventTotal(svc, `deregistered (\d+) targets in \(target-group `) != 2 {
		t.Fatalf("no draining events: %q", messages(svc))
	}

	// A target the load balancer reports unhealthy gets its task replaced.
	bad := firstKey(e.health())
	e.report("unhealthy", func(k string) bool { return k == bad })
	e.waitFor("unhealthy task replaced", func() bool {
		for _, task := range e.allTasks() {
			if aws.ToString(task.StoppedReason) == "Task failed ELB health checks in (target-group "+e.tg+")" {
				return true
			}
		}
		return false
	})
	if svc := e.describe("web"); !hasEvent(svc, `\(port \d+\) is unhealthy in \(target-group .*\) due to \(reason Health checks failed with these codes: \[500\]\)\.`) {
		t.Fatalf("no unhealthy event: %q", messages(svc))
	}
	e.waitFor("a new target", func() bool {
		h := e.health()
		return len(h) == 2 && h[bad] == "" || len(h) == 3
	})
	e.report("healthy", func(k string) bool { return k != bad })
	e.waitFor("steady after replacement", e.steady("web"))

	// Scale in: deregistered and drained first.
	if _, err := e.Admin.UpdateService(e.ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.Cluster), Service: aws.String("web"), DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("one DEACTIVATING", func() bool { return len(e.byStatus("web")["DEACTIVATING"]) == 1 })
	e.waitFor("scaled in", func() bool { return len(e.tasks("web")) == 1 && len(e.health()) == 1 })
	e.report("healthy", nil)
	e.waitFor("steady at 1", e.steady("web"))

	// StopTask of a task with targets drains it first, as ECS does.
	victim := e.tasks("web")[0]
	key := target(arn.ResourceID(aws.ToString(victim.ContainerInstanceArn)), aws.ToInt32(victim.Containers[0].NetworkBindings[0].HostPort))
	called := time.Now()
	out, err := e.Admin.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: aws.String(e.Cluster), Task: victim.TaskArn, Reason: aws.String("operator says")})
	if err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(out.Task.LastStatus); st != "DEACTIVATING" {
		t.Fatalf("StopTask answered lastStatus %s, want DEACTIVATING (draining first)", st)
	}
	if h := e.health()[key]; h != elbtypes.TargetHealthStateEnumDraining {
		t.Fatalf("the stopped task's target %s is %q, want draining", key, h)
	}
	// Asked again while it drains: it stays draining, not stopped at once.
	again, err := e.Admin.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: aws.String(e.Cluster), Task: victim.TaskArn})
	if err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(again.Task.LastStatus); st != "DEACTIVATING" || again.Task.StoppingAt != nil {
		t.Fatalf("a second StopTask during the drain: lastStatus %s, stoppingAt %v", st, again.Task.StoppingAt)
	}
	e.waitFor("the stopped task STOPPED", func() bool {
		dt, err := e.Admin.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String(e.Cluster), Tasks: []string{aws.ToString(victim.TaskArn)}})
		if err != nil || len(dt.Tasks) != 1 {
			t.Fatalf("DescribeTasks: %v", err)
		}
		victim = dt.Tasks[0]
		return aws.ToString(victim.LastStatus) == "STOPPED"
	})
	if victim.StopCode != types.TaskStopCodeUserInitiated || aws.ToString(victim.StoppedReason) != "operator says" {
		t.Fatalf("stopped with %s %q, want UserInitiated \"operator says\"", victim.StopCode, aws.ToString(victim.StoppedReason))
	}
	// The agent was told only once the 1 s deregistration delay passed.
	if stopping := aws.ToTime(victim.StoppingAt); stopping.Before(called.Add(time.Second)) {
		t.Fatalf("stop sent at %s, %s after StopTask: before the target drained (1 s)", stopping.Format(time.RFC3339Nano), stopping.Sub(called))
	}
	if svc := e.describe("web"); !hasEvent(svc, `has begun draining connections on 1 tasks\.`) {
		t.Fatalf("no draining event for StopTask: %q", messages(svc))
	}
	e.waitFor("a replacement", func() bool { return len(e.tasks("web")) == 1 && len(e.health()) == 1 })
}

// TestDaemonServiceBehindLoadBalancer: a DAEMON service's tasks are
// registered on every instance, and one the load balancer reports
// unhealthy is stopped (drained first) and replaced on its instance.
func TestDaemonServiceBehindLoadBalancer(t *testing.T) {
	e := newLBEnv(t)
	v1 := e.webDef()
	_, err := e.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(e.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String(v1), SchedulingStrategy: types.SchedulingStrategyDaemon,
		LoadBalancers: []types.LoadBalancer{{TargetGroupArn: aws.String(e.tg), ContainerName: aws.String("app"), ContainerPort: aws.Int32(8080)}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("2 targets", func() bool { return len(e.health()) == 2 })
	e.report("healthy", nil)
	e.waitFor("steady", e.steady("web"))
	before := e.tasks("web")
	bad := firstKey(e.health())
	e.report("unhealthy", func(k string) bool { return k == bad })
	reason := "Task failed ELB health checks in (target-group " + e.tg + ")"
	var sick types.Task
	e.waitFor("the unhealthy task stopped", func() bool {
		for _, task := range e.allTasks() {
			if aws.ToString(task.StoppedReason) == reason && aws.ToString(task.LastStatus) == "STOPPED" {
				sick = task
				return true
			}
		}
		return false
	})
	if svc := e.describe("web"); !hasEvent(svc, `is unhealthy in \(target-group .*\) due to \(reason Health checks failed with these codes: \[500\]\)\.`) {
		t.Fatalf("no unhealthy event: %q", messages(svc))
	}
	if sick.StoppingAt == nil || sick.StopCode != types.TaskStopCodeServiceSchedulerInitiated {
		t.Fatalf("the unhealthy task: %+v", sick)
	}
	// Its replacement runs on the same instance and is registered there.
	e.waitFor("the replacement registered", func() bool {
		ts := e.tasks("web")
		if len(ts) != 2 || len(e.health()) != 2 {
			return false
		}
		for _, task := range ts {
			if aws.ToString(task.TaskArn) == aws.ToString(sick.TaskArn) || aws.ToString(task.LastStatus) != "RUNNING" {
				return false
			}
		}
		return true
	})
	perInstance := map[string]int{}
	for _, task := range e.tasks("web") {
		perInstance[aws.ToString(task.ContainerInstanceArn)]++
	}
	for _, task := range before {
		if perInstance[aws.ToString(task.ContainerInstanceArn)] != 1 {
			t.Fatalf("daemon tasks per instance after the replacement: %v", perInstance)
		}
	}
	e.report("healthy", nil)
	e.waitFor("steady again", e.steady("web"))
}

func firstKey(m map[string]elbtypes.TargetHealthStateEnum) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
