package lb

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// TestMetricsInput: counter deltas per target group, counters started
// again (a new worker, a server of the same name added again), response
// times, and host counts without draining or removed servers.
func TestMetricsInput(t *testing.T) {
	p := &plan{backends: []*backend{{name: "tg-web", targetGroupArn: "arn:tg", checked: true, targets: []desiredServer{
		{name: "a"}, {name: "b"}, {name: "gone", draining: true}, {name: "sick"}}}}}
	stats := []serverStat{
		{backend: "l80", name: frontendRow, requests: 130},
		{backend: "tg-web", name: "a", status: "UP", responses: [6]int64{0, 100, 0, 0, 5, 0}, rtime: 20},
		{backend: "tg-web", name: "b", status: "UP", responses: [6]int64{0, 7, 1, 2, 0, 0}, rtime: 4},
		{backend: "tg-web", name: "gone", status: "DRAIN", responses: [6]int64{0, 50, 0, 0, 0, 0}, rtime: 9},
		{backend: "tg-web", name: "sick", status: "DOWN", checkStatus: "L7STS"},
	}
	prev := counters{frontends: map[string]int64{"l80": 30}, servers: map[string][6]int64{
		"tg-web/a":    {0, 40, 0, 0, 5, 0},
		"tg-web/b":    {0, 900, 0, 0, 0, 0}, // added again since: counts from zero
		"tg-web/gone": {0, 50, 0, 0, 0, 0},
	}}
	got := metricsInput("arn:lb", p, stats, countersOf(stats), prev, func(be *backend, d desiredServer, s serverStat) string {
		return healthOf(be.checked, s, lbwire.TargetHealth{}).State
	})
	want := lbwire.MetricsInput{LoadBalancerArn: "arn:lb", RequestCount: 100, TargetGroups: []lbwire.TargetGroupMetrics{{
		TargetGroupArn: "arn:tg", RequestCount: 70, Target2XX: 67, Target3XX: 1, Target4XX: 2,
		ResponseTimeSum: 60*0.020 + 10*0.004, ResponseTimeMin: 0.004, ResponseTimeMax: 0.020,
		HealthyHostCount: 2, UnHealthyHostCount: 1}}}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// A new worker (after a reload) counts from zero: everything counts.
	got = metricsInput("arn:lb", p, stats, countersOf(stats), counters{}, func(*backend, desiredServer, serverStat) string { return "" })
	if got.RequestCount != 130 || got.TargetGroups[0].RequestCount != 105+10+50 || got.TargetGroups[0].Target5XX != 5 {
		t.Errorf("from zero: %+v", got)
	}
}

// TestMetrics: requests sent through HAProxy come back from the
// endpoint's CloudWatch API as AWS/ApplicationELB metrics with AWS's
// dimensions: RequestCount of the load balancer and of its target group
// equal to the requests sent, all of them HTTPCode_Target_2XX_Count,
// RequestCountPerTarget half of them with two healthy targets,
// HealthyHostCount 2, a TargetResponseTime.
func TestMetrics(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	tg := l.createLB(ctx, t, "web")
	a, b := newTarget(t, "a"), newTarget(t, "b")
	url := fmt.Sprintf("http://127.0.0.1:%d/", l.listenerPort)
	l.register(ctx, t, tg, a, b)
	start := time.Now().Truncate(time.Minute)
	l.runLB(t)
	l.waitHealth(ctx, t, tg, a, "healthy")
	l.waitHealth(ctx, t, tg, b, "healthy")
	// Health checks count in HAProxy's stats of neither frontends nor
	// servers' responses; only these requests do.
	const sent = 400
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range sent {
		if status, body, err := get(ctx, client, url); err != nil || status != http.StatusOK {
			t.Fatalf("request %d: %d %q %v", i, status, body, err)
		}
	}
	lbDim := cwtypes.Dimension{Name: aws.String("LoadBalancer"), Value: aws.String(l.lbArn[len("arn:aws:elasticloadbalancing:us-test-1:123456789012:loadbalancer/"):])}
	tgDim := cwtypes.Dimension{Name: aws.String("TargetGroup"), Value: aws.String(tg[len("arn:aws:elasticloadbalancing:us-test-1:123456789012:"):])}
	stat := func(name string, s cwtypes.Statistic, dims ...cwtypes.Dimension) (float64, bool) {
		out, err := l.cw.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String("AWS/ApplicationELB"),
			MetricName: aws.String(name), Dimensions: dims, StartTime: aws.Time(start), EndTime: aws.Time(time.Now().Add(time.Minute)),
			Period: aws.Int32(3600), Statistics: []cwtypes.Statistic{s}})
		if err != nil {
			t.Fatalf("GetMetricStatistics %s: %v", name, err)
		}
		if len(out.Datapoints) == 0 {
			return 0, false
		}
		d := out.Datapoints[0]
		switch s {
		case cwtypes.StatisticSum:
			return aws.ToFloat64(d.Sum), true
		case cwtypes.StatisticMaximum:
			return aws.ToFloat64(d.Maximum), true
		default:
			return aws.ToFloat64(d.Average), true
		}
	}
	var last string
	waitFor(t, "RequestCount of the target group", func() bool {
		v, _ := stat("RequestCount", cwtypes.StatisticSum, lbDim, tgDim)
		last = fmt.Sprint(v)
		return v >= sent
	}, func() string { return "last " + last })
	time.Sleep(2 * time.Second) // one more report: nothing more may come
	for _, c := range []struct {
		name string
		s    cwtypes.Statistic
		dims []cwtypes.Dimension
		want float64
	}{
		{"RequestCount", cwtypes.StatisticSum, []cwtypes.Dimension{lbDim}, sent},
		{"RequestCount", cwtypes.StatisticSum, []cwtypes.Dimension{lbDim, tgDim}, sent},
		{"HTTPCode_Target_2XX_Count", cwtypes.StatisticSum, []cwtypes.Dimension{lbDim, tgDim}, sent},
		{"HTTPCode_Target_5XX_Count", cwtypes.StatisticSum, []cwtypes.Dimension{lbDim, tgDim}, 0},
		{"RequestCountPerTarget", cwtypes.StatisticSum, []cwtypes.Dimension{tgDim}, sent / 2},
		{"RequestCountPerTarget", cwtypes.StatisticSum, []cwtypes.Dimension{lbDim, tgDim}, sent / 2},
		{"HealthyHostCount", cwtypes.StatisticMaximum, []cwtypes.Dimension{lbDim, tgDim}, 2},
		{"UnHealthyHostCount", cwtypes.StatisticMaximum, []cwtypes.Dimension{lbDim, tgDim}, 0},
	} {
		if v, ok := stat(c.name, c.s, c.dims...); !ok || v != c.want {
			t.Errorf("%s %s over %d dimensions: %v (data %v), want %v", c.name, c.s, len(c.dims), v, ok, c.want)
		}
	}
	if v, ok := stat("TargetResponseTime", cwtypes.StatisticAverage, lbDim, tgDim); !ok || v < 0 || v > 1 {
		t.Errorf("TargetResponseTime average %v s (data %v): want a loopback answer's time", v, ok)
	} else {
		t.Logf("TargetResponseTime average %.4f s; %d requests answered by a %d, b %d", v, sent, a.served.Load(), b.served.Load())
	}
}
