package autoscaling_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

const (
	region   = "us-test-1"
	account  = "123456789012"
	resource = "service/lab/web"
)

// clock is the endpoint's injected clock. It starts 12 minutes before the
// real time and the tests move it at most 26 minutes, so that SigV4
// signatures (made at the real time, allowed 15 minutes either way) stay
// valid.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lab is a real endpoint on a loopback port driven by an injected clock,
// with a cluster "lab" and a service "web" of 2 tasks (no agents: only the
// desired count matters here).
type lab struct {
	t          *testing.T
	dir        string
	clock      *clock
	ep         *cluster.Endpoint
	url        string
	id, secret string
	closeSrv   func()
}

func startLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{t: t, dir: filepath.Join(t.TempDir(), "data"), clock: &clock{t: time.Now().UTC().Truncate(time.Minute).Add(-12*time.Minute + 5*time.Second)}}
	l.open()
	t.Cleanup(func() { l.close() })
	id, secret, err := l.ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.id, l.secret = id, secret
	ctx := context.Background()
	e := l.ecs()
	if _, err := e.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(64), Essential: aws.Bool(true)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("lab"), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	return l
}

// open opens the endpoint on the lab's data directory (again after close:
// a restart).
func (l *lab) open() {
	l.t.Helper()
	ep, err := cluster.Open(context.Background(), cluster.Options{Region: region, AccountID: account, DataDir: l.dir,
		NoAgentSessions: true, Now: l.clock.now})
	if err != nil {
		l.t.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	l.ep, l.url = ep, srv.URL
	l.closeSrv = srv.Close
}

func (l *lab) close() {
	if l.ep != nil {
		l.closeSrv()
		l.ep.Close()
		l.ep = nil
	}
}

func (l *lab) restart() {
	l.close()
	l.open()
}

func (l *lab) creds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(l.id, l.secret, "")
}

func (l *lab) ecs() *ecs.Client {
	return ecs.New(ecs.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: l.creds(), Retryer: aws.NopRetryer{}})
}

func (l *lab) cw() *cloudwatch.Client {
	return cloudwatch.New(cloudwatch.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: l.creds(), Retryer: aws.NopRetryer{}})
}

func (l *lab) aas() *aas.Client {
	return aas.New(aas.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: l.creds(), Retryer: aws.NopRetryer{}})
}

// put puts one value of Lab/App QueueDepth at the clock's time.
func (l *lab) put(v float64) {
	l.t.Helper()
	if _, err := l.cw().PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/App"),
		MetricData: []cwtypes.MetricDatum{{MetricName: aws.String("QueueDepth"), Value: aws.Float64(v), Timestamp: aws.Time(l.clock.now())}}}); err != nil {
		l.t.Fatal(err)
	}
}

// minute moves the clock to the next minute and does what the leader
// does at it.
func (l *lab) minute() {
	l.t.Helper()
	l.clock.advance(time.Minute)
	if err := l.ep.ScaleOnce(context.Background()); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) desired() int32 {
	l.t.Helper()
	out, err := l.ecs().DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: aws.String("lab"), Services: []string{"web"}})
	if err != nil || len(out.Services) != 1 {
		l.t.Fatalf("DescribeServices: %v %v", out, err)
	}
	return out.Services[0].DesiredCount
}

func (l *lab) activities() []aastypes.ScalingActivity {
	l.t.Helper()
	out, err := l.aas().DescribeScalingActivities(context.Background(), &aas.DescribeScalingActivitiesInput{
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: aws.String(resource)})
	if err != nil {
		l.t.Fatal(err)
	}
	return out.ScalingActivities
}

func (l *lab) register(min, max int32) {
	l.t.Helper()
	if _, err := l.aas().RegisterScalableTarget(context.Background(), &aas.RegisterScalableTargetInput{ServiceNamespace: aastypes.ServiceNamespaceEcs,
		ResourceId: aws.String(resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		MinCapacity: aws.Int32(min), MaxCapacity: aws.Int32(max)}); err != nil {
		l.t.Fatal(err)
	}
}

// TestTargetTracking: a target tracking policy on a customized metric
// creates its two alarms; three minutes above the target scale out at
// once, proportionally; a restart within the minute does not scale again
// (no cooldown to hide a second action);
// fifteen minutes below 90 % of it scale in a step at a time after the
// cooldown, never below the minimum; missing data holds. The activities
// tell the story in AWS's words.
func TestTargetTracking(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	l.register(1, 6)
	pol, err := l.aas().PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{PolicyName: aws.String("queue50"), ServiceNamespace: aastypes.ServiceNamespaceEcs,
		ResourceId: aws.String(resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount, PolicyType: aastypes.PolicyTypeTargetTrackingScaling,
		TargetTrackingScalingPolicyConfiguration: &aastypes.TargetTrackingScalingPolicyConfiguration{TargetValue: aws.Float64(50),
			ScaleOutCooldown: aws.Int32(0), ScaleInCooldown: aws.Int32(120),
			CustomizedMetricSpecification: &aastypes.CustomizedMetricSpecification{Namespace: aws.String("Lab/App"), MetricName: aws.String("QueueDepth"),
				Statistic: aastypes.MetricStatisticAverage}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Alarms) != 2 || !strings.HasPrefix(aws.ToString(pol.Alarms[0].AlarmName), "TargetTracking-service/lab/web-AlarmHigh-") ||
		!strings.HasPrefix(aws.ToString(pol.Alarms[1].AlarmName), "TargetTracking-service/lab/web-AlarmLow-") {
		t.Fatalf("policy alarms: %+v", pol.Alarms)
	}
	high, low := aws.ToString(pol.Alarms[0].AlarmName), aws.ToString(pol.Alarms[1].AlarmName)
	al, err := l.cw().DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{low}})
	if err != nil || len(al.MetricAlarms) != 1 || aws.ToFloat64(al.MetricAlarms[0].Threshold) != 45 || aws.ToInt32(al.MetricAlarms[0].EvaluationPeriods) != 15 {
		t.Fatalf("low alarm: %+v %v", al, err)
	}

	// Three minutes at 120 (per task, target 50): 2 × 120 / 50 = 4.8 → 5.
	for range 3 {
		l.put(120)
		l.minute()
	}
	if d := l.desired(); d != 5 {
		t.Fatalf("after 3 minutes above the target: desired %d, want 5", d)
	}
	acts := l.activities()
	if len(acts) != 1 || aws.ToString(acts[0].Description) != "Setting desired count to 5." ||
		aws.ToString(acts[0].Cause) != "monitor alarm "+high+" in state ALARM triggered policy queue50" ||
		aws.ToString(acts[0].StatusMessage) != "Successfully set desired count to 5. Change successfully fulfilled by ecs." {
		t.Fatalf("activities: %+v", acts)
	}
	// The endpoint restarts within the minute and the new leader
	// evaluates that minute again: no second scale-out.
	l.restart()
	if err := l.ep.ScaleOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if d, n := l.desired(), len(l.activities()); d != 5 || n != 1 {
		t.Fatalf("after a restart in the same minute: desired %d with %d activities, want 5 and 1", d, n)
	}

	// Low from now on: the high alarm returns to OK, the low one needs 15
	// periods below 45, then scales in a tenth (at least one) at a time,
	// 120 s apart.
	var seen []int32
	for range 19 {
		l.put(10)
		l.minute()
		seen = append(seen, l.desired())
	}
	want := "5 5 5 5 5 5 5 5 5 5 5 5 5 5 4 4 3 3 2"
	if got := strings.Trim(fmt.Sprint(seen), "[]"); got != want {
		t.Fatalf("desired counts while low: %s, want %s", got, want)
	}
	// The agent stops publishing: the low alarm has fewer than 15
	// datapoints and leaves ALARM; target tracking holds.
	for range 3 {
		l.minute()
	}
	if d := l.desired(); d != 2 {
		t.Errorf("with missing data: desired %d, want 2 (hold)", d)
	}
	al, err = l.cw().DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{low}})
	if err != nil || al.MetricAlarms[0].StateValue == cwtypes.StateValueAlarm {
		t.Errorf("low alarm with missing data: %+v %v", al.MetricAlarms, err)
	}
	if acts := l.activities(); len(acts) != 4 || aws.ToString(acts[0].Description) != "Setting desired count to 2." {
		t.Errorf("activities: %d, newest %+v", len(acts), acts[0])
	}
	// Deleting the policy deletes the alarms it owns.
	if _, err := l.aas().DeleteScalingPolicy(ctx, &aas.DeleteScalingPolicyInput{PolicyName: aws.String("queue50"), ServiceNamespace: aastypes.ServiceNamespaceEcs,
		ResourceId: aws.String(resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount}); err != nil {
		t.Fatal(err)
	}
	if al, err := l.cw().DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{}); err != nil || len(al.MetricAlarms) != 0 {
		t.Errorf("alarms after DeleteScalingPolicy: %+v %v", al, err)
	}
}

// TestStepScalingWithTheCLI: an operator puts a custom metric with `aws
// cloudwatch put-metric-data`, creates a step scaling policy and an alarm
// on the metric naming it; the alarm fires and the service scales by the
// step the breach falls in.
func TestStepScalingWithTheCLI(t *testing.T) {
	l := startLab(t)
	l.register(1, 10)
	cli := testenv.AWSCLI(t, l.url, region, l.id, l.secret)
	run := func(args ...string) map[string]any {
		t.Helper()
		return cli(t, true, args...)
	}
	arn := run("application-autoscaling", "put-scaling-policy", "--policy-name", "jobs-step", "--service-namespace", "ecs",
		"--resource-id", resource, "--scalable-dimension", "ecs:service:DesiredCount", "--policy-type", "StepScaling",
		"--step-scaling-policy-configuration", `{"AdjustmentType":"ChangeInCapacity","Cooldown":60,"MetricAggregationType":"Maximum",`+
			`"StepAdjustments":[{"MetricIntervalLowerBound":0,"MetricIntervalUpperBound":100,"ScalingAdjustment":1},{"MetricIntervalLowerBound":100,"ScalingAdjustment":3}]}`,
	)["PolicyARN"].(string)
	if !strings.HasPrefix(arn, "arn:aws:autoscaling:us-test-1:123456789012:scalingPolicy:") || !strings.HasSuffix(arn, ":resource/ecs/service/lab/web:policyName/jobs-step") {
		t.Fatalf("policy ARN %q", arn)
	}
	run("cloudwatch", "put-metric-alarm", "--alarm-name", "jobs-waiting", "--namespace", "Lab/Jobs", "--metric-name", "Waiting",
		"--statistic", "Maximum", "--period", "60", "--evaluation-periods", "2", "--threshold", "100",
		"--comparison-operator", "GreaterThanOrEqualToThreshold", "--alarm-actions", arn)
	// Two minutes at 250: 150 above the threshold, the second step (+3).
	for range 2 {
		run("cloudwatch", "put-metric-data", "--namespace", "Lab/Jobs", "--metric-name", "Waiting", "--value", "250",
			"--timestamp", l.clock.now().Format(time.RFC3339))
		l.minute()
	}
	if d := l.desired(); d != 5 {
		t.Fatalf("after the alarm: desired %d, want 5", d)
	}
	if s := fmt.Sprint(run("cloudwatch", "describe-alarms", "--alarm-names", "jobs-waiting")["MetricAlarms"]); !strings.Contains(s, "StateValue:ALARM") {
		t.Errorf("alarm: %s", s)
	}
	acts, _ := run("application-autoscaling", "describe-scaling-activities", "--service-namespace", "ecs", "--resource-id", resource)["ScalingActivities"].([]any)
	if len(acts) == 0 || fmt.Sprint(acts[0].(map[string]any)["Description"], " / ", acts[0].(map[string]any)["Cause"]) !=
		"Setting desired count to 5. / monitor alarm jobs-waiting in state ALARM triggered policy jobs-step" {
		t.Errorf("activities: %v", acts)
	}
	// Still in ALARM the next minute, within the cooldown: no change.
	run("cloudwatch", "put-metric-data", "--namespace", "Lab/Jobs", "--metric-name", "Waiting", "--value", "150", "--timestamp", l.clock.now().Format(time.RFC3339))
	l.clock.advance(30 * time.Second)
	if err := l.ep.ScaleOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := l.desired(); d != 5 {
		t.Errorf("within the cooldown: desired %d, want 5", d)
	}
	// After it, the alarm (still in ALARM) acts again: 50 above, +1.
	l.minute()
	if d := l.desired(); d != 6 {
		t.Errorf("after the cooldown: desired %d, want 6", d)
	}
}

// TestScheduledAction: a scheduled action at a time in New York sets the
// minimum and maximum capacity when the clock reaches it, raising the
// desired count to the new minimum, once.
func TestScheduledAction(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	l.register(1, 4)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := l.clock.now().Add(3 * time.Minute).Truncate(time.Minute).In(ny)
	if _, err := l.aas().PutScheduledAction(ctx, &aas.PutScheduledActionInput{ScheduledActionName: aws.String("morning"),
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: aws.String(resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		Schedule: aws.String("at(" + at.Format("2006-01-02T15:04:05") + ")"), Timezone: aws.String("America/New_York"),
		ScalableTargetAction: &aastypes.ScalableTargetAction{MinCapacity: aws.Int32(3), MaxCapacity: aws.Int32(8)}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l.minute()
	}
	if d := l.desired(); d != 2 {
		t.Fatalf("before the time: desired %d", d)
	}
	for range 3 {
		l.minute()
	}
	tg, err := l.aas().DescribeScalableTargets(ctx, &aas.DescribeScalableTargetsInput{ServiceNamespace: aastypes.ServiceNamespaceEcs})
	if err != nil || len(tg.ScalableTargets) != 1 || aws.ToInt32(tg.ScalableTargets[0].MinCapacity) != 3 || aws.ToInt32(tg.ScalableTargets[0].MaxCapacity) != 8 {
		t.Fatalf("target after the action: %+v %v", tg, err)
	}
	if d := l.desired(); d != 3 {
		t.Errorf("desired %d, want the new minimum 3", d)
	}
	var got []string
	for _, a := range l.activities() {
		got = append(got, aws.ToString(a.Description)+" / "+aws.ToString(a.Cause))
	}
	want := []string{"Setting desired count to 3. / scheduled action name morning was triggered",
		"Setting min capacity to 3 and max capacity to 8 / scheduled action name morning was triggered"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("activities:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Refusals name the member.
	_, err = l.aas().PutScheduledAction(ctx, &aas.PutScheduledActionInput{ScheduledActionName: aws.String("bad"),
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: aws.String(resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		Schedule: aws.String("cron(0 8 * * MON *)"), ScalableTargetAction: &aastypes.ScalableTargetAction{MinCapacity: aws.Int32(1)}})
	if err == nil || !strings.Contains(err.Error(), "ValidationException") || !strings.Contains(err.Error(), "Schedule") {
		t.Errorf("a cron with both days: %v", err)
	}
	_, err = l.aas().RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{ServiceNamespace: aastypes.ServiceNamespaceEcs,
		ResourceId: aws.String("service/lab/nope"), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		MinCapacity: aws.Int32(1), MaxCapacity: aws.Int32(2)})
	if err == nil || !strings.Contains(err.Error(), "ECS service doesn't exist: service/lab/nope") {
		t.Errorf("a target for no service: %v", err)
	}
}
