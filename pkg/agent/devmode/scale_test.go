package devmode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// metricsSpeedup is how much faster than real time the endpoint's
// metrics clock runs in these tests: a metrics minute is 6 s, so target
// tracking's 3-minute high alarm fires 18 s into a load and its
// 15-minute low alarm 90 s after it, with every rule (periods,
// datapoints, cooldowns) as on the real clock. Agents sample every
// second and publish every 2 s, berth-lb reports every second: every
// metrics minute has data.
const metricsSpeedup = 10

// fastClock is the endpoint's metrics clock: real time since start, sped
// up (continuous across an endpoint restart).
type fastClock struct{ start time.Time }

func (c fastClock) now() time.Time { return c.start.Add(metricsSpeedup * time.Since(c.start)) }

func (c fastClock) tune(o *devmode.EndpointOptions) {
	o.MetricsClock, o.ScalingTick = c.now, 200*time.Millisecond
}

func fastMetrics(s *agentSpec) { s.MetricsSample, s.MetricsPublish = time.Second, 2*time.Second }

// scaleWait bounds each wait for scaling (in real time): it tells a hang
// from slowness and is no timing assertion.
const scaleWait = 5 * time.Minute

// scaler drives Application Auto Scaling and CloudWatch on the lab's
// endpoint with an admin key, and watches one service's desired count.
type scaler struct {
	t        *testing.T
	e        *e2e
	aas      *aas.Client
	cw       *cloudwatch.Client
	service  string
	resource string

	mu   sync.Mutex
	seen []int32 // desired counts in the order observed, without repeats
}

func newScaler(t *testing.T, e *e2e, service string) *scaler {
	t.Helper()
	id, secret, err := e.ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewStaticCredentialsProvider(id, secret, "")
	return &scaler{t: t, e: e, service: service, resource: "service/default/" + service,
		aas: aas.New(aas.Options{Region: region, BaseEndpoint: aws.String(e.ep.URL), HTTPClient: awshttp.NewBuildableClient(), Credentials: creds}),
		cw:  cloudwatch.New(cloudwatch.Options{Region: region, BaseEndpoint: aws.String(e.ep.URL), HTTPClient: awshttp.NewBuildableClient(), Credentials: creds})}
}

// track registers the service as a scalable target from lo to hi tasks
// with a target tracking policy (cooldowns of a metrics minute) and
// returns the policy's alarms.
func (s *scaler) track(lo, hi int32, target float64, metric aastypes.PredefinedMetricSpecification) (high, low string) {
	s.t.Helper()
	ctx := context.Background()
	if _, err := s.aas.RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{ServiceNamespace: aastypes.ServiceNamespaceEcs,
		ResourceId: aws.String(s.resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		MinCapacity: aws.Int32(lo), MaxCapacity: aws.Int32(hi)}); err != nil {
		s.t.Fatal(err)
	}
	out, err := s.aas.PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{PolicyName: aws.String("track"), ServiceNamespace: aastypes.ServiceNamespaceEcs,
		ResourceId: aws.String(s.resource), ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		PolicyType: aastypes.PolicyTypeTargetTrackingScaling,
		TargetTrackingScalingPolicyConfiguration: &aastypes.TargetTrackingScalingPolicyConfiguration{TargetValue: aws.Float64(target),
			ScaleOutCooldown: aws.Int32(60), ScaleInCooldown: aws.Int32(60), PredefinedMetricSpecification: &metric}})
	if err != nil || len(out.Alarms) != 2 {
		s.t.Fatalf("PutScalingPolicy: %v %+v", err, out)
	}
	return aws.ToString(out.Alarms[0].AlarmName), aws.ToString(out.Alarms[1].AlarmName)
}

func (s *scaler) desired() int32 {
	s.t.Helper()
	out, err := s.e.admin.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{s.service}})
	if err != nil || len(out.Services) != 1 {
		s.t.Fatalf("DescribeServices: %v %+v", err, out)
	}
	d := out.Services[0].DesiredCount
	s.mu.Lock()
	if len(s.seen) == 0 || s.seen[len(s.seen)-1] != d {
		s.seen = append(s.seen, d)
	}
	s.mu.Unlock()
	return d
}

// waitDesired polls the desired count until cond holds.
func (s *scaler) waitDesired(what string, cond func(int32) bool) int32 {
	s.t.Helper()
	deadline := time.Now().Add(scaleWait)
	for {
		d := s.desired()
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waiting for %s: desired %d after %v; desired counts %v; activities:\n%s", what, d, scaleWait, s.history(), s.story())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *scaler) history() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int32(nil), s.seen...)
}

func (s *scaler) activities() []aastypes.ScalingActivity {
	s.t.Helper()
	out, err := s.aas.DescribeScalingActivities(context.Background(), &aas.DescribeScalingActivitiesInput{
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: aws.String(s.resource)})
	if err != nil {
		s.t.Fatal(err)
	}
	return out.ScalingActivities
}

// story is the activities, oldest first, one a line.
func (s *scaler) story() string {
	acts := s.activities()
	var b strings.Builder
	for i := len(acts) - 1; i >= 0; i-- {
		a := acts[i]
		fmt.Fprintf(&b, "  %s %s | %s | %s\n", a.StatusCode, aws.ToString(a.Description), aws.ToString(a.Cause), aws.ToString(a.StatusMessage))
	}
	return b.String()
}

// checkStory fails unless the activities hold a successful scale-out by
// the high alarm and a successful scale-in by the low one, in AWS's
// words, and the desired count went up, then down to lo and never below.
func (s *scaler) checkStory(high, low string, lo int32) {
	s.t.Helper()
	story := s.story()
	s.t.Logf("desired counts %v; activities:\n%s", s.history(), story)
	var out, in bool
	for _, a := range s.activities() {
		ok := a.StatusCode == aastypes.ScalingActivityStatusCodeSuccessful &&
			strings.HasPrefix(aws.ToString(a.Description), "Setting desired count to ") &&
			strings.HasPrefix(aws.ToString(a.StatusMessage), "Successfully set desired count to ")
		out = out || ok && aws.ToString(a.Cause) == "monitor alarm "+high+" in state ALARM triggered policy track"
		in = in || ok && aws.ToString(a.Cause) == "monitor alarm "+low+" in state ALARM triggered policy track"
	}
	if !out || !in {
		s.t.Errorf("activities lack a scale-out by %s (%v) or a scale-in by %s (%v)", high, out, low, in)
	}
	seen := s.history()
	top := int32(0)
	for _, d := range seen {
		top = max(top, d)
		if d < lo {
			s.t.Errorf("desired count %d below the minimum %d (%v)", d, lo, seen)
		}
	}
	if top <= lo || seen[len(seen)-1] != lo {
		s.t.Errorf("desired counts %v: want a rise above %d and a return to it", seen, lo)
	}
}

// statistic is one statistic of an AWS/* metric over the last metrics
// hour, per hour (a single datapoint).
func (s *scaler) statistic(clock fastClock, ns, name string, st cwtypes.Statistic, dims map[string]string) float64 {
	s.t.Helper()
	var ds []cwtypes.Dimension
	for k, v := range dims {
		ds = append(ds, cwtypes.Dimension{Name: aws.String(k), Value: aws.String(v)})
	}
	now := clock.now()
	out, err := s.cw.GetMetricStatistics(context.Background(), &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String(ns),
		MetricName: aws.String(name), Dimensions: ds, StartTime: aws.Time(now.Add(-time.Hour)), EndTime: aws.Time(now.Add(time.Minute)),
		Period: aws.Int32(7200), Statistics: []cwtypes.Statistic{st}})
	if err != nil || len(out.Datapoints) != 1 {
		s.t.Fatalf("GetMetricStatistics %s: %v %+v", name, err, out)
	}
	d := out.Datapoints[0]
	switch st {
	case cwtypes.StatisticMaximum:
		return aws.ToFloat64(d.Maximum)
	case cwtypes.StatisticSum:
		return aws.ToFloat64(d.Sum)
	}
	return aws.ToFloat64(d.Average)
}

// TestTargetTrackingCPU: a service of one task with target tracking on
// ECSServiceAverageCPUUtilization at 50 % (1 to 3 tasks). Its tasks burn
// CPU while a file on the host exists: the agents' TCS publications make
// the service's utilisation (far) above the target, the high alarm fires
// after its three periods and the service scales out. The file goes, the
// tasks idle, and after the low alarm's fifteen periods the service
// scales in a task per cooldown, back to one and never below; the
// endpoint restarts after the first scale-in step and the scale-in goes
// on with one action per task, a cooldown apart. DescribeScalingActivities
// tells the story.
func TestTargetTrackingCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test with agents and containers (-short)")
	}
	clock := fastClock{start: time.Now()}
	e := newE2ETuned(t, acs.Options{}, clock.tune)
	for range 2 {
		s := e.spec()
		fastMetrics(&s)
		e.runAgent(s)
	}
	ctx := context.Background()
	ctl := t.TempDir()
	flag := filepath.Join(ctl, "burn")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Busy while /ctl/burn exists (a full CPU: far above a quarter CPU's
	// reservation), else asleep.
	burn := `while :; do if [ -e /ctl/burn ]; then i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; else sleep 1; fi; done`
	td, err := e.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("burn"),
		Volumes: []types.Volume{{Name: aws.String("ctl"), Host: &types.HostVolumeProperties{SourcePath: aws.String(ctl)}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("burn"), Image: aws.String(e.image), Cpu: 256,
			Memory: aws.Int32(32), Essential: aws.Bool(true), Command: []string{"/bin/sh", "-c", burn},
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("ctl"), ContainerPath: aws.String("/ctl"), ReadOnly: aws.Bool(true)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("default"), ServiceName: aws.String("burn"),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.admin.DeleteService(context.Background(), &ecs.DeleteServiceInput{Cluster: aws.String("default"), Service: aws.String("burn"), Force: aws.Bool(true)})
	})
	sc := newScaler(t, e, "burn")
	high, low := sc.track(1, 3, 50, aastypes.PredefinedMetricSpecification{PredefinedMetricType: aastypes.MetricTypeECSServiceAverageCPUUtilization})

	start := time.Now()
	up := sc.waitDesired("scale-out on CPU", func(d int32) bool { return d > 1 })
	t.Logf("scaled out to %d %v after the policy was put (%.0f metrics minutes)", up, time.Since(start).Round(time.Second),
		time.Since(start).Minutes()*metricsSpeedup)
	busy := sc.statistic(clock, "AWS/ECS", "CPUUtilization", cwtypes.StatisticMaximum, map[string]string{"ClusterName": "default", "ServiceName": "burn"})
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// The endpoint restarts in the middle of scaling in (after its first
	// step): the store keeps the cooldown stamps and the evaluations
	// acted on, so the scale-in goes on a task per cooldown, none lost,
	// none repeated.
	first := sc.waitDesired("the first scale-in step", func(d int32) bool { return d < up })
	addr := e.ep.Addr
	if err := e.ep.Shutdown(ctx); err != nil {
		t.Fatalf("stop the endpoint: %v", err)
	}
	e.startEndpoint(addr)
	t.Logf("endpoint restarted at %d tasks", first)
	sc.waitDesired("scale-in to the minimum", func(d int32) bool { return d == 1 })
	t.Logf("CPUUtilization maximum while burning %.0f %%; back to 1 task %v after the burners stopped (%.0f metrics minutes)",
		busy, time.Since(stopped).Round(time.Second), time.Since(stopped).Minutes()*metricsSpeedup)
	if busy <= 50 {
		t.Errorf("CPUUtilization maximum %.1f %% while burning: want above the target (50)", busy)
	}
	sc.checkStory(high, low, 1)
	top := slices.Max(sc.history())
	var ins []time.Time
	for _, a := range sc.activities() {
		if a.StatusCode == aastypes.ScalingActivityStatusCodeSuccessful && strings.Contains(aws.ToString(a.Cause), low) {
			ins = append(ins, aws.ToTime(a.StartTime))
		}
	}
	if len(ins) != int(top)-1 {
		t.Errorf("%d scale-in activities from %d tasks to 1, want %d (one per task)", len(ins), top, top-1)
	}
	for i := 1; i < len(ins); i++ {
		if gap := ins[i-1].Sub(ins[i]); gap < time.Minute {
			t.Errorf("scale-in steps %v apart on the metrics clock, within the 60 s cooldown", gap)
		}
	}
}

// TestTargetTrackingRequestCount: the web service behind HAProxy (berth-lb)
// with target tracking on ALBRequestCountPerTarget at 100 requests per
// target per minute (1 to 3 tasks). A loopback client sending requests
// one after another through HAProxy makes berth-lb's RequestCountPerTarget
// far above it: the service scales out and its new tasks take traffic
// with no failed request; the client stops, the counts fall to zero, and
// the service scales back in to one task.
func TestTargetTrackingRequestCount(t *testing.T) {
	clock := fastClock{start: time.Now()}
	l := newLBLabTuned(t, clock.tune, fastMetrics)
	l.createService(t, "web", l.webTaskDef(), l.tg, 1)
	waitUntil(t, "one healthy web task", l.settled(t, "web", l.tg, 1))
	sc := newScaler(t, l.e2e, "web")
	lbID := l.lbArn[strings.Index(l.lbArn, ":loadbalancer/")+len(":loadbalancer/"):]
	tgID := l.tg[strings.LastIndex(l.tg, ":")+1:]
	high, low := sc.track(1, 3, 100, aastypes.PredefinedMetricSpecification{PredefinedMetricType: aastypes.MetricTypeALBRequestCountPerTarget,
		ResourceLabel: aws.String(lbID + "/" + tgID)})

	ld := startLBLoad(t, l.url)
	start := time.Now()
	up := sc.waitDesired("scale-out on requests", func(d int32) bool { return d > 1 })
	t.Logf("scaled out to %d %v after the load started", up, time.Since(start).Round(time.Second))
	waitUntil(t, "the new tasks healthy behind HAProxy", func() (bool, string) { return l.settled(t, "web", l.tg, int(sc.desired()))() })
	ld.noFailures(t, "requests while scaling out")
	perTarget := sc.statistic(clock, "AWS/ApplicationELB", "RequestCountPerTarget", cwtypes.StatisticSum, map[string]string{"TargetGroup": tgID})
	requests := sc.statistic(clock, "AWS/ApplicationELB", "RequestCount", cwtypes.StatisticSum, map[string]string{"LoadBalancer": lbID})
	stopped := time.Now()
	sc.waitDesired("scale-in to the minimum", func(d int32) bool { return d == 1 })
	t.Logf("RequestCount %.0f, RequestCountPerTarget sum %.0f; back to 1 task %v after the load stopped", requests, perTarget,
		time.Since(stopped).Round(time.Second))
	if perTarget <= 100 || requests < perTarget {
		t.Errorf("RequestCountPerTarget %.0f, RequestCount %.0f: want above the target (100) and at most the requests", perTarget, requests)
	}
	sc.checkStory(high, low, 1)
}

// TestServiceUtilizationStatistics: `aws cloudwatch get-metric-statistics`
// answers a service's CPUUtilization and MemoryUtilization consistent
// with what its task used: a container burning CPU (a full CPU reserved)
// at the share of a CPU the kernel accounts to its process over the same
// metrics minutes, and a container whose awk holds a 16,000,000-byte
// string at those 15 MiB of the task's 64 MiB.
func TestServiceUtilizationStatistics(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test with agents and containers (-short)")
	}
	clock := fastClock{start: time.Now()}
	e := newE2ETuned(t, acs.Options{}, clock.tune)
	s := e.spec()
	fastMetrics(&s)
	e.runAgent(s)
	ctx := context.Background()
	const allocated = 16_000_000
	td, err := e.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("use"),
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("burn"), Image: aws.String(e.image), Cpu: 1024, Memory: aws.Int32(32), Essential: aws.Bool(true),
				Command: []string{"/bin/sh", "-c", "while :; do :; done"}},
			{Name: aws.String("hold"), Image: aws.String(e.image), Memory: aws.Int32(32), Essential: aws.Bool(true),
				Command: []string{"/bin/sh", "-c", fmt.Sprintf(`awk 'BEGIN{s=sprintf("%%%ds",""); system("sleep 600")}'`, allocated)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("default"), ServiceName: aws.String("use"),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.admin.DeleteService(context.Background(), &ecs.DeleteServiceInput{Cluster: aws.String("default"), Service: aws.String("use"), Force: aws.Bool(true)})
	})
	pid := burnerPid(t, e, s.NS)
	// Two metrics minutes to settle (the burner's first samples), then
	// the kernel's account over whole metrics minutes.
	time.Sleep(12 * time.Second)
	from := clock.now().Truncate(time.Minute).Add(time.Minute)
	for clock.now().Before(from) {
		time.Sleep(50 * time.Millisecond)
	}
	realFrom, ticks0 := time.Now(), testenv.ProcCPUTicks(t, pid)
	to := from.Add(5 * time.Minute)
	for clock.now().Before(to) {
		time.Sleep(50 * time.Millisecond)
	}
	used := float64(testenv.ProcCPUTicks(t, pid)-ticks0) / 100 / time.Since(realFrom).Seconds() * 100 // % of one CPU = of 1024 units
	time.Sleep(3 * time.Second)                                                                       // the last publication of the span arrives
	id, secret, err := e.ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cli := testenv.AWSCLI(t, e.ep.URL, region, id, secret)
	stat := func(name string) float64 {
		out := cli(t, true, "cloudwatch", "get-metric-statistics", "--namespace", "AWS/ECS", "--metric-name", name,
			"--dimensions", "Name=ClusterName,Value=default", "Name=ServiceName,Value=use",
			"--start-time", from.UTC().Format(time.RFC3339), "--end-time", to.UTC().Format(time.RFC3339),
			"--period", "300", "--statistics", "Average")
		dps, _ := out["Datapoints"].([]any)
		if len(dps) != 1 {
			t.Fatalf("get-metric-statistics %s: %v", name, out)
		}
		v, _ := dps[0].(map[string]any)["Average"].(float64)
		return v
	}
	cpu, mem := stat("CPUUtilization"), stat("MemoryUtilization")
	wantMem := float64(allocated) / (1 << 20) / 64 * 100
	t.Logf("CPUUtilization %.1f %% vs the kernel's %.1f %% of one CPU; MemoryUtilization %.1f %% (the string alone: %.1f %% of 64 MiB)",
		cpu, used, mem, wantMem)
	if diff := cpu - used; diff < -(1+used/10) || diff > 1+used/10 {
		t.Errorf("CPUUtilization %.1f %%, the kernel accounts %.1f %%: want within 1 point + 10 %%", cpu, used)
	}
	if mem < wantMem-2 || mem > wantMem+5 {
		t.Errorf("MemoryUtilization %.1f %%: want the held string's %.1f %% (plus the processes' few MiB)", mem, wantMem)
	}
}

// burnerPid waits for the burn container of the agent's namespace ns and
// returns its shell's pid (as the host sees it).
func burnerPid(t *testing.T, e *e2e, ns string) uint32 {
	t.Helper()
	cli := e.cd.Client(t)
	ctx := namespaced(t, ns)
	deadline := time.Now().Add(scaleWait)
	for time.Now().Before(deadline) {
		cs, err := cli.Containers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			task, err := c.Task(ctx, nil)
			if err != nil {
				continue
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", task.Pid())); err == nil && strings.Contains(string(b), "while :; do :; done") {
				return task.Pid()
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal("no burn container running")
	return 0
}
