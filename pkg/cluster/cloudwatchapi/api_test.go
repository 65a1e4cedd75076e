package cloudwatchapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

const (
	region  = "us-test-1"
	account = "123456789012"
)

// lab is a real cluster endpoint on a loopback port with an admin key.
type lab struct {
	ep         *cluster.Endpoint
	url        string
	id, secret string
}

func startLab(t *testing.T) *lab {
	t.Helper()
	ep, err := cluster.Open(context.Background(), cluster.Options{Region: region, AccountID: account,
		DataDir: filepath.Join(t.TempDir(), "data"), NoAgentSessions: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	t.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	id, secret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &lab{ep: ep, url: srv.URL, id: id, secret: secret}
}

// cw is the AWS SDK's CloudWatch client (RPC v2 CBOR), without retries.
func (l *lab) cw(id, secret string) *cloudwatch.Client {
	return cloudwatch.New(cloudwatch.Options{Region: region, BaseEndpoint: aws.String(l.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), Retryer: aws.NopRetryer{}})
}

func (l *lab) snapshot(t *testing.T) map[store.Bucket]map[string]string {
	t.Helper()
	snap, err := store.Snapshot(l.ep.Store(), cluster.Buckets())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// refused runs call, which must fail with code naming member and leave
// the store as it was.
func (l *lab) refused(t *testing.T, what, code, member string, call func() error) {
	t.Helper()
	before := l.snapshot(t)
	err := call()
	if errorCode(err) != code || !strings.Contains(err.Error(), member) {
		t.Errorf("%s: error %v, want %s naming %s", what, err, code, member)
	}
	if after := l.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("%s: the failed request changed the store", what)
	}
}

// TestSDKMetrics puts and reads metrics with aws-sdk-go-v2, which speaks
// RPC v2 CBOR to CloudWatch.
func TestSDKMetrics(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	c := l.cw(l.id, l.secret)
	now := time.Now().UTC().Truncate(time.Minute)
	at := now.Add(-10 * time.Minute)
	dims := []types.Dimension{{Name: aws.String("Queue"), Value: aws.String("jobs")}}
	_, err := c.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/App"), MetricData: []types.MetricDatum{
		{MetricName: aws.String("Depth"), Dimensions: dims, Value: aws.Float64(10), Unit: types.StandardUnitCount, Timestamp: aws.Time(at)},
		{MetricName: aws.String("Depth"), Dimensions: dims, Values: []float64{20, 40}, Counts: []float64{1, 3}, Unit: types.StandardUnitCount, Timestamp: aws.Time(at.Add(30 * time.Second))},
		{MetricName: aws.String("Depth"), Dimensions: dims, StatisticValues: &types.StatisticSet{SampleCount: aws.Float64(2), Sum: aws.Float64(6),
			Minimum: aws.Float64(1), Maximum: aws.Float64(5)}, Unit: types.StandardUnitCount, Timestamp: aws.Time(at.Add(time.Minute))},
		{MetricName: aws.String("Latency"), Value: aws.Float64(0.25), Unit: types.StandardUnitSeconds, Timestamp: aws.Time(at)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String("Lab/App"), MetricName: aws.String("Depth"),
		Dimensions: dims, StartTime: aws.Time(at), EndTime: aws.Time(at.Add(2 * time.Minute)), Period: aws.Int32(60),
		Statistics: []types.Statistic{types.StatisticSum, types.StatisticSampleCount, types.StatisticMaximum, types.StatisticMinimum, types.StatisticAverage}})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Datapoints) != 2 || aws.ToString(st.Label) != "Depth" {
		t.Fatalf("GetMetricStatistics: %+v", st)
	}
	dp := st.Datapoints[0]
	if !dp.Timestamp.Equal(at) || *dp.Sum != 10+20+120 || *dp.SampleCount != 5 || *dp.Maximum != 40 || *dp.Minimum != 10 ||
		*dp.Average != 30 || dp.Unit != types.StandardUnitCount {
		t.Errorf("first minute: %v sum %v n %v max %v min %v avg %v %s", dp.Timestamp, *dp.Sum, *dp.SampleCount, *dp.Maximum, *dp.Minimum, *dp.Average, dp.Unit)
	}
	if dp := st.Datapoints[1]; *dp.Sum != 6 || *dp.SampleCount != 2 {
		t.Errorf("second minute: %+v", dp)
	}
	// Another unit matches nothing.
	st, err = c.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String("Lab/App"), MetricName: aws.String("Depth"),
		Dimensions: dims, StartTime: aws.Time(at), EndTime: aws.Time(at.Add(2 * time.Minute)), Period: aws.Int32(60),
		Statistics: []types.Statistic{types.StatisticSum}, Unit: types.StandardUnitBytes})
	if err != nil || len(st.Datapoints) != 0 {
		t.Errorf("in Bytes: %+v %v", st, err)
	}

	gd, err := c.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(at), EndTime: aws.Time(at.Add(2 * time.Minute)),
		MetricDataQueries: []types.MetricDataQuery{{Id: aws.String("depth"), MetricStat: &types.MetricStat{Period: aws.Int32(120), Stat: aws.String("Sum"),
			Metric: &types.Metric{Namespace: aws.String("Lab/App"), MetricName: aws.String("Depth"), Dimensions: dims}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(gd.MetricDataResults) != 1 || !reflect.DeepEqual(gd.MetricDataResults[0].Values, []float64{156}) ||
		gd.MetricDataResults[0].StatusCode != types.StatusCodeComplete || aws.ToString(gd.MetricDataResults[0].Label) != "Depth" {
		t.Errorf("GetMetricData: %+v", gd.MetricDataResults)
	}

	lm, err := c.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("Lab/App")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range lm.Metrics {
		names = append(names, aws.ToString(m.MetricName))
	}
	if strings.Join(names, ",") != "Depth,Latency" {
		t.Errorf("ListMetrics: %v", names)
	}
	lm, err = c.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Dimensions: []types.DimensionFilter{{Name: aws.String("Queue")}}})
	if err != nil || len(lm.Metrics) != 1 || aws.ToString(lm.Metrics[0].Dimensions[0].Value) != "jobs" {
		t.Errorf("ListMetrics by dimension: %+v %v", lm, err)
	}

	// Refusals name the member, in AWS's shape, and change nothing.
	l.refused(t, "AWS/ namespace", "InvalidParameterValue", "Namespace", func() error {
		_, err := c.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/ECS"),
			MetricData: []types.MetricDatum{{MetricName: aws.String("x"), Value: aws.Float64(1)}}})
		return err
	})
	l.refused(t, "value and statistic set", "InvalidParameterCombination", "MetricData.member.2.Value", func() error {
		_, err := c.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/App"), MetricData: []types.MetricDatum{
			{MetricName: aws.String("ok"), Value: aws.Float64(1)},
			{MetricName: aws.String("x"), Value: aws.Float64(1), StatisticValues: &types.StatisticSet{SampleCount: aws.Float64(1),
				Sum: aws.Float64(1), Minimum: aws.Float64(1), Maximum: aws.Float64(1)}}}})
		return err
	})
	l.refused(t, "old timestamp", "InvalidParameterValue", "MetricData.member.1.Timestamp", func() error {
		_, err := c.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/App"), MetricData: []types.MetricDatum{
			{MetricName: aws.String("x"), Value: aws.Float64(1), Timestamp: aws.Time(now.Add(-15 * 24 * time.Hour))}}})
		return err
	})
	l.refused(t, "too many datapoints", "InvalidParameterCombination", "1,440", func() error {
		_, err := c.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String("Lab/App"), MetricName: aws.String("Depth"),
			StartTime: aws.Time(now.Add(-48 * time.Hour)), EndTime: aws.Time(now), Period: aws.Int32(60), Statistics: []types.Statistic{types.StatisticSum}})
		return err
	})
	l.refused(t, "percentiles", "InvalidParameterValue", "MetricDataQueries.member.1.MetricStat.Stat", func() error {
		_, err := c.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(at), EndTime: aws.Time(now),
			MetricDataQueries: []types.MetricDataQuery{{Id: aws.String("p"), MetricStat: &types.MetricStat{Period: aws.Int32(60), Stat: aws.String("p99"),
				Metric: &types.Metric{Namespace: aws.String("Lab/App"), MetricName: aws.String("Depth")}}}}})
		return err
	})
	agentID, agentSecret, err := l.ep.Keys().Create(auth.RoleAgent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.refused(t, "agent key", "AccessDeniedException", "PutMetricData", func() error {
		_, err := l.cw(agentID, agentSecret).PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/App"),
			MetricData: []types.MetricDatum{{MetricName: aws.String("x"), Value: aws.Float64(1)}}})
		return err
	})
}

// TestQueryProtocol reads what the SDK put through the Query protocol
// (older SDKs and tools): a SigV4-signed form POST with an XML answer, and
// an XML error with CloudWatch's Query code.
func TestQueryProtocol(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	if _, err := l.cw(l.id, l.secret).PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Lab/Q"),
		MetricData: []types.MetricDatum{{MetricName: aws.String("Hits"), Value: aws.Float64(3), Timestamp: aws.Time(at)}}}); err != nil {
		t.Fatal(err)
	}
	post := func(form url.Values) (int, string) {
		t.Helper()
		body := form.Encode()
		req, err := http.NewRequest(http.MethodPost, l.url+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		sum := sha256Hex(body)
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: l.id, SecretAccessKey: l.secret}, req, sum, "monitoring", region, time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post(url.Values{"Action": {"GetMetricStatistics"}, "Version": {"2010-08-01"}, "Namespace": {"Lab/Q"}, "MetricName": {"Hits"},
		"StartTime": {at.Format(time.RFC3339)}, "EndTime": {at.Add(time.Minute).Format(time.RFC3339)}, "Period": {"60"},
		"Statistics.member.1": {"Sum"}})
	if code != 200 || !strings.Contains(body, "<Sum>3</Sum>") || !strings.Contains(body, "<GetMetricStatisticsResult>") {
		t.Errorf("Query GetMetricStatistics: %d %s", code, body)
	}
	code, body = post(url.Values{"Action": {"PutMetricData"}, "Version": {"2010-08-01"}, "Namespace": {"AWS/ECS"},
		"MetricData.member.1.MetricName": {"x"}, "MetricData.member.1.Value": {"1"}})
	if code != 400 || !strings.Contains(body, "<Code>InvalidParameterValue</Code>") {
		t.Errorf("Query error: %d %s", code, body)
	}
}

// TestCLIMetrics drives the API with the AWS CLI, which speaks JSON 1.0
// to CloudWatch: put-metric-data, get-metric-statistics, list-metrics,
// and an error with CloudWatch's code.
func TestCLIMetrics(t *testing.T) {
	l := startLab(t)
	ok, fails := l.cli(t)
	at := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	ok("put-metric-data", "--namespace", "Lab/CLI", "--metric-name", "Jobs", "--dimensions", "Queue=q1",
		"--value", "7", "--unit", "Count", "--timestamp", at.Format(time.RFC3339))
	ok("put-metric-data", "--namespace", "Lab/CLI", "--metric-data",
		`[{"MetricName":"Jobs","Dimensions":[{"Name":"Queue","Value":"q1"}],"Value":5,"Unit":"Count","Timestamp":"`+at.Add(10*time.Second).Format(time.RFC3339)+`"}]`)
	out := ok("get-metric-statistics", "--namespace", "Lab/CLI", "--metric-name", "Jobs", "--dimensions", "Name=Queue,Value=q1",
		"--start-time", at.Format(time.RFC3339), "--end-time", at.Add(time.Minute).Format(time.RFC3339), "--period", "60",
		"--statistics", "Sum", "Maximum")
	var st struct {
		Label      string
		Datapoints []struct {
			Timestamp    float64 // CLI v1 prints timestamps as received: epoch seconds in JSON 1.0
			Sum, Maximum float64
			Unit         string
		}
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("get-metric-statistics output: %v\n%s", err, out)
	}
	if st.Label != "Jobs" || len(st.Datapoints) != 1 || st.Datapoints[0].Timestamp != float64(at.Unix()) || st.Datapoints[0].Sum != 12 || st.Datapoints[0].Maximum != 7 || st.Datapoints[0].Unit != "Count" {
		t.Errorf("get-metric-statistics: %s", out)
	}
	if out := ok("list-metrics", "--namespace", "Lab/CLI"); !strings.Contains(string(out), `"MetricName":"Jobs"`) {
		t.Errorf("list-metrics: %s", out)
	}
	msg := fails("put-metric-data", "--namespace", "Lab/CLI", "--metric-name", "Jobs", "--value", "1", "--statistic-values",
		"SampleCount=1,Sum=1,Minimum=1,Maximum=1")
	if !strings.Contains(msg, "InvalidParameterCombination") || !strings.Contains(msg, "MetricData.member.1.Value") {
		t.Errorf("put-metric-data with a value and a statistic set: %s", msg)
	}
}

// cli runs `aws cloudwatch <args>` as an operator would: ok expects
// success and returns the JSON output, fails expects a failure and
// returns its text.
func (l *lab) cli(t *testing.T) (ok func(args ...string) []byte, fails func(args ...string) string) {
	run := testenv.AWSCLI(t, l.url, region, l.id, l.secret)
	ok = func(args ...string) []byte {
		t.Helper()
		b, err := json.Marshal(run(t, true, append([]string{"cloudwatch"}, args...)...))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fails = func(args ...string) string {
		t.Helper()
		msg, _ := run(t, false, append([]string{"cloudwatch"}, args...)...)["error"].(string)
		return msg
	}
	return ok, fails
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestSDKAlarms manages alarms with aws-sdk-go-v2: create, describe,
// set the state by hand, read the history, delete; refusals name the
// member.
func TestSDKAlarms(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	c := l.cw(l.id, l.secret)
	put := func(name string, mod func(*cloudwatch.PutMetricAlarmInput)) error {
		in := &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String(name), Namespace: aws.String("Lab/App"), MetricName: aws.String("Depth"),
			Dimensions: []types.Dimension{{Name: aws.String("Queue"), Value: aws.String("jobs")}}, Statistic: types.StatisticAverage,
			Period: aws.Int32(60), EvaluationPeriods: aws.Int32(3), DatapointsToAlarm: aws.Int32(2), Threshold: aws.Float64(100),
			ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold, TreatMissingData: aws.String("notBreaching"),
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("lab")}}}
		if mod != nil {
			mod(in)
		}
		_, err := c.PutMetricAlarm(ctx, in)
		return err
	}
	for _, n := range []string{"queue-deep", "queue-empty"} {
		if err := put(n, nil); err != nil {
			t.Fatal(err)
		}
	}
	d, err := c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNamePrefix: aws.String("queue-d")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.MetricAlarms) != 1 {
		t.Fatalf("DescribeAlarms: %+v", d.MetricAlarms)
	}
	a := d.MetricAlarms[0]
	if a.StateValue != types.StateValueInsufficientData || aws.ToString(a.AlarmArn) != "arn:aws:cloudwatch:us-test-1:123456789012:alarm:queue-deep" ||
		aws.ToInt32(a.DatapointsToAlarm) != 2 || aws.ToString(a.TreatMissingData) != "notBreaching" || !aws.ToBool(a.ActionsEnabled) {
		t.Errorf("alarm: %+v", a)
	}
	if _, err := c.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("queue-deep"), StateValue: types.StateValueAlarm,
		StateReason: aws.String("testing the page")}); err != nil {
		t.Fatal(err)
	}
	d, err = c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{StateValue: types.StateValueAlarm})
	if err != nil || len(d.MetricAlarms) != 1 || aws.ToString(d.MetricAlarms[0].StateReason) != "testing the page" {
		t.Fatalf("DescribeAlarms in ALARM: %+v %v", d, err)
	}
	h, err := c.DescribeAlarmHistory(ctx, &cloudwatch.DescribeAlarmHistoryInput{AlarmName: aws.String("queue-deep")})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.AlarmHistoryItems) != 2 || aws.ToString(h.AlarmHistoryItems[0].HistorySummary) != "Alarm updated from INSUFFICIENT_DATA to ALARM" ||
		h.AlarmHistoryItems[1].HistoryItemType != types.HistoryItemTypeConfigurationUpdate {
		t.Errorf("DescribeAlarmHistory: %+v", h.AlarmHistoryItems)
	}

	l.refused(t, "SNS action", "InvalidParameterValue", "AlarmActions.member.1", func() error {
		return put("x", func(in *cloudwatch.PutMetricAlarmInput) {
			in.AlarmActions = []string{"arn:aws:sns:us-test-1:123456789012:page"}
		})
	})
	l.refused(t, "datapoints above periods", "InvalidParameterValue", "DatapointsToAlarm", func() error {
		return put("x", func(in *cloudwatch.PutMetricAlarmInput) { in.DatapointsToAlarm = aws.Int32(4) })
	})
	l.refused(t, "no threshold", "MissingParameter", "Threshold", func() error {
		return put("x", func(in *cloudwatch.PutMetricAlarmInput) { in.Threshold = nil })
	})
	l.refused(t, "anomaly band", "InvalidParameterValue", "ComparisonOperator", func() error {
		return put("x", func(in *cloudwatch.PutMetricAlarmInput) {
			in.ComparisonOperator = types.ComparisonOperatorLessThanLowerOrGreaterThanUpperThreshold
		})
	})
	l.refused(t, "set state of no alarm", "ResourceNotFound", "nope", func() error {
		_, err := c.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("nope"), StateValue: types.StateValueOk, StateReason: aws.String("x")})
		return err
	})
	l.refused(t, "delete with one unknown", "ResourceNotFound", "nope", func() error {
		_, err := c.DeleteAlarms(ctx, &cloudwatch.DeleteAlarmsInput{AlarmNames: []string{"queue-deep", "nope"}})
		return err
	})
	if _, err := c.DeleteAlarms(ctx, &cloudwatch.DeleteAlarmsInput{AlarmNames: []string{"queue-deep", "queue-empty"}}); err != nil {
		t.Fatal(err)
	}
	if snap := l.snapshot(t); len(snap["metric-alarms"])+len(snap["metric-alarm-history"]) != 0 {
		t.Errorf("after DeleteAlarms: %v", snap["metric-alarms"])
	}
}

// TestCLIAlarms: put-metric-alarm, describe-alarms, set-alarm-state,
// describe-alarm-history and delete-alarms as an operator types them.
func TestCLIAlarms(t *testing.T) {
	l := startLab(t)
	run, fails := l.cli(t)
	run("put-metric-alarm", "--alarm-name", "cpu-high", "--namespace", "AWS/ECS", "--metric-name", "CPUUtilization",
		"--dimensions", "Name=ClusterName,Value=lab", "Name=ServiceName,Value=web", "--statistic", "Average", "--period", "60",
		"--evaluation-periods", "3", "--threshold", "70", "--comparison-operator", "GreaterThanThreshold", "--treat-missing-data", "missing")
	var d struct {
		MetricAlarms []struct{ AlarmName, StateValue, StateReason string }
	}
	if err := json.Unmarshal(run("describe-alarms", "--alarm-names", "cpu-high"), &d); err != nil || len(d.MetricAlarms) != 1 ||
		d.MetricAlarms[0].StateValue != "INSUFFICIENT_DATA" {
		t.Fatalf("describe-alarms: %+v %v", d, err)
	}
	run("set-alarm-state", "--alarm-name", "cpu-high", "--state-value", "OK", "--state-reason", "by hand")
	var h struct {
		AlarmHistoryItems []struct{ HistorySummary string }
	}
	if err := json.Unmarshal(run("describe-alarm-history", "--alarm-name", "cpu-high", "--history-item-type", "StateUpdate"), &h); err != nil ||
		len(h.AlarmHistoryItems) != 1 || h.AlarmHistoryItems[0].HistorySummary != "Alarm updated from INSUFFICIENT_DATA to OK" {
		t.Errorf("describe-alarm-history: %+v %v", h, err)
	}
	if msg := fails("delete-alarms", "--alarm-names", "nope"); !strings.Contains(msg, "ResourceNotFound") {
		t.Errorf("delete-alarms of an unknown alarm: %s", msg)
	}
	run("delete-alarms", "--alarm-names", "cpu-high")
}

// TestPrometheusEndpoint: GET /metrics on the endpoint answers the text
// exposition format without a signature, as a Prometheus scrape asks.
func TestPrometheusEndpoint(t *testing.T) {
	l := startLab(t)
	resp, err := http.Get(l.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" ||
		!strings.Contains(string(b), "# TYPE berth_ecs_service_cpu_utilization_percent gauge") {
		t.Errorf("GET /metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}
