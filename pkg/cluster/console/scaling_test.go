package console_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// TestServiceScaling: the service page shows that the service is not a
// scalable target; once it is, its capacity range and policies (a target
// tracking and a step policy, with their alarms), and, after the step
// policy's alarm fired (SetAlarmState), the scaling activity that raised
// the desired count. A viewer sees the same through its own key.
func TestServiceScaling(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.createService(t, "api", 1)
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	live := f.url + "/console/clusters/web/services/api?part=live"
	if page := get(t, c, live); !strings.Contains(page, "Not a scalable target") {
		t.Fatalf("the service page of a service without auto scaling does not say so:\n%s", page)
	}
	creds := credentials.NewStaticCredentialsProvider(f.adminID, f.adminKey, "")
	sc := aas.New(aas.Options{Region: testRegion, BaseEndpoint: aws.String(f.url), HTTPClient: awshttp.NewBuildableClient(), Credentials: creds,
		Retryer: aws.NopRetryer{}})
	cw := cloudwatch.New(cloudwatch.Options{Region: testRegion, BaseEndpoint: aws.String(f.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: creds, Retryer: aws.NopRetryer{}})
	ref := func() (aastypes.ServiceNamespace, *string, aastypes.ScalableDimension) {
		return aastypes.ServiceNamespaceEcs, aws.String("service/web/api"), aastypes.ScalableDimensionECSServiceDesiredCount
	}
	ns, res, dim := ref()
	if _, err := sc.RegisterScalableTarget(ctx, &aas.RegisterScalableTargetInput{ServiceNamespace: ns, ResourceId: res, ScalableDimension: dim,
		MinCapacity: aws.Int32(1), MaxCapacity: aws.Int32(4)}); err != nil {
		t.Fatalf("RegisterScalableTarget: %v", err)
	}
	if _, err := sc.PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{PolicyName: aws.String("cpu50"), ServiceNamespace: ns, ResourceId: res,
		ScalableDimension: dim, PolicyType: aastypes.PolicyTypeTargetTrackingScaling,
		TargetTrackingScalingPolicyConfiguration: &aastypes.TargetTrackingScalingPolicyConfiguration{TargetValue: aws.Float64(50),
			PredefinedMetricSpecification: &aastypes.PredefinedMetricSpecification{PredefinedMetricType: aastypes.MetricTypeECSServiceAverageCPUUtilization},
			ScaleOutCooldown:              aws.Int32(60), ScaleInCooldown: aws.Int32(300)}}); err != nil {
		t.Fatalf("PutScalingPolicy cpu50: %v", err)
	}
	step, err := sc.PutScalingPolicy(ctx, &aas.PutScalingPolicyInput{PolicyName: aws.String("queue-out"), ServiceNamespace: ns, ResourceId: res,
		ScalableDimension: dim, PolicyType: aastypes.PolicyTypeStepScaling,
		StepScalingPolicyConfiguration: &aastypes.StepScalingPolicyConfiguration{AdjustmentType: aastypes.AdjustmentTypeChangeInCapacity,
			Cooldown: aws.Int32(60), StepAdjustments: []aastypes.StepAdjustment{{MetricIntervalLowerBound: aws.Float64(0), ScalingAdjustment: aws.Int32(1)}}}})
	if err != nil {
		t.Fatalf("PutScalingPolicy queue-out: %v", err)
	}
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("queue-high"), Namespace: aws.String("Lab/App"),
		MetricName: aws.String("QueueDepth"), Statistic: cwtypes.StatisticAverage, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(2),
		Threshold: aws.Float64(10), ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
		AlarmActions: []string{aws.ToString(step.PolicyARN)}}); err != nil {
		t.Fatalf("PutMetricAlarm: %v", err)
	}
	// The step policy acts on the alarm's last minute: a queue of 20.
	if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/App"), MetricData: []cwtypes.MetricDatum{{
		MetricName: aws.String("QueueDepth"), Value: aws.Float64(20), Timestamp: aws.Time(time.Now().Add(-time.Minute))}}}); err != nil {
		t.Fatalf("PutMetricData: %v", err)
	}
	if _, err := cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("queue-high"), StateValue: cwtypes.StateValueAlarm,
		StateReason: aws.String("test")}); err != nil {
		t.Fatalf("SetAlarmState: %v", err)
	}
	page := waitPage(t, c, live, `id="scaling-min">1<`, `id="scaling-max">4<`,
		"keep ECSServiceAverageCPUUtilization at 50; cooldowns: scale-out 60 s, scale-in 300 s", "TargetTracking-service/web/api-AlarmHigh",
		"ChangeInCapacity by alarm breach [0, +∞): +1; cooldown 60 s", `id="desired">2<`)
	acts := page[strings.Index(page, `id="scaling-activities"`):]
	if !containsAll(acts, "Successful", "queue-high") {
		t.Errorf("the scaling activities do not show the alarm's successful scale-out:\n%s", acts)
	}
	viewerID, viewerSecret := f.newKey(t, auth.RoleViewer)
	vc, _, _ := f.signInHTTP(t, viewerID, viewerSecret)
	if vpage := get(t, vc, live); !containsAll(vpage, `id="scaling-max">4<`, "queue-out") || strings.Contains(vpage, "AccessDenied") {
		t.Errorf("a viewer's service page does not show the scaling policies:\n%s", vpage)
	}
}

// TestServiceRequests: the service's request graph is the RequestCount a
// minute of its target group, as the data plane reported it (two reports
// in one minute add up).
func TestServiceRequests(t *testing.T) {
	f := newFixture(t)
	b := f.serviceBehindLB(t)
	var out lbwire.MetricsOutput
	for _, n := range []int64{5, 7} {
		f.dataPlane(t, b, lbwire.OpReportMetrics, lbwire.MetricsInput{LoadBalancerArn: b.lbArn, RequestCount: n,
			TargetGroups: []lbwire.TargetGroupMetrics{{TargetGroupArn: b.tgArn, RequestCount: n, Target2XX: n, HealthyHostCount: 1}}}, &out)
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	if page := get(t, c, f.url+"/console/clusters/web/services/site"); !strings.Contains(page, `id="requests-chart"`) {
		t.Errorf("the service page of a service behind a load balancer has no request chart:\n%s", page)
	}
	var g graphData
	if err := json.Unmarshal([]byte(get(t, c, f.url+"/console/clusters/web/services/site/requests")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Series) != 1 || g.Series[0].Label != "web-tg" || len(g.Times) == 0 || g.Percent {
		t.Fatalf("request graph %+v: want one series web-tg with points", g)
	}
	total := 0.0
	for _, v := range g.Series[0].Values {
		if v != nil {
			total += *v
		}
	}
	if total != 12 {
		t.Errorf("request graph %+v: %g requests in all, want 12", g.Series[0].Values, total)
	}
}
