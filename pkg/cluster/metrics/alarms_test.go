package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

func TestEvaluate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	times := []time.Time{base, base.Add(time.Minute), base.Add(2 * time.Minute)}
	cases := []struct {
		name    string
		treat   string
		m       int32
		current types.StateValue
		values  []*float64
		want    types.StateValue
	}{
		{"all breach", "", 0, "", []*float64{f(60), f(70), f(80)}, types.StateValueAlarm},
		{"one below", "", 0, "", []*float64{f(60), f(40), f(80)}, types.StateValueOk},
		{"2 of 3", "", 2, "", []*float64{f(60), f(40), f(80)}, types.StateValueAlarm},
		{"missing: all missing", "", 0, types.StateValueOk, []*float64{nil, nil, nil}, types.StateValueInsufficientData},
		{"missing: present ones breach", "", 0, "", []*float64{nil, f(90), f(90)}, types.StateValueOk},
		{"missing: 2 of 3 present breach", "", 2, "", []*float64{nil, f(90), f(90)}, types.StateValueAlarm},
		{"ignore: all missing keeps the state", "ignore", 0, types.StateValueAlarm, []*float64{nil, nil, nil}, types.StateValueAlarm},
		{"breaching: missing breach", "breaching", 0, "", []*float64{nil, f(90), nil}, types.StateValueAlarm},
		{"notBreaching: missing do not", "notBreaching", 0, types.StateValueAlarm, []*float64{nil, nil, nil}, types.StateValueOk},
		{"equal is greater-or-equal", "", 0, "", []*float64{f(50), f(50), f(50)}, types.StateValueAlarm},
	}
	for _, c := range cases {
		a := &types.MetricAlarm{ComparisonOperator: types.ComparisonOperatorGreaterThanOrEqualToThreshold, Threshold: aws.Float64(50),
			Statistic: types.StatisticAverage, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(3), StateValue: c.current}
		if c.treat != "" {
			a.TreatMissingData = aws.String(c.treat)
		}
		if c.m > 0 {
			a.DatapointsToAlarm = aws.Int32(c.m)
		}
		got, reason, _ := Evaluate(a, c.values, times, base)
		if got != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got, reason, c.want)
		}
	}
	a := &types.MetricAlarm{ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold, Threshold: aws.Float64(50), EvaluationPeriods: aws.Int32(3)}
	if _, reason, _ := Evaluate(a, []*float64{f(60), f(70), f(80)}, times, base); reason !=
		"Threshold Crossed: 3 out of the last 3 datapoints [80.0 (01/03/25 12:02:00), 70.0 (01/03/25 12:01:00), 60.0 (01/03/25 12:00:00)] were greater than the threshold (50.0) (minimum 3 datapoints for OK -> ALARM transition)." {
		t.Errorf("reason: %s", reason)
	}
}

// recorder is an ActionRunner that records what it was asked to run.
type recorder struct{ runs []string }

func (r *recorder) RunAlarmActions(_ context.Context, a *Alarm, acts []string, transition bool, _ time.Time) {
	r.runs = append(r.runs, a.Name()+" "+string(a.Alarm.StateValue)+" "+strings.Join(acts, ",")+" "+map[bool]string{true: "transition", false: "again"}[transition])
}

func TestEvaluateAlarmsOverTheStore(t *testing.T) {
	s, _, c := openStore(t)
	c.t = c.t.Truncate(time.Minute)
	id := MetricID{Namespace: "Lab", MetricName: "Queue"}
	alarm := &Alarm{Alarm: types.MetricAlarm{AlarmName: aws.String("deep"), Namespace: aws.String("Lab"), MetricName: aws.String("Queue"),
		Statistic: types.StatisticMaximum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(2), Threshold: aws.Float64(10),
		ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold, AlarmActions: []string{"arn:scale-out"}, OKActions: []string{"arn:ok"}}}
	if err := s.PutAlarm(alarm); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	step := func(v float64) types.StateValue {
		t.Helper()
		if err := s.Put([]Sample{{MetricID: id, Time: c.t.Add(10 * time.Second), Stat: Value(v)}}); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(time.Minute)
		if _, err := s.EvaluateAlarms(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		a, err := s.Alarm("deep")
		if err != nil {
			t.Fatal(err)
		}
		return a.Alarm.StateValue
	}
	if st := step(20); st != types.StateValueOk { // one period of two has data: 20 > 10 but one is missing
		t.Fatalf("after one breaching minute: %s", st)
	}
	if st := step(30); st != types.StateValueAlarm {
		t.Fatalf("after two breaching minutes: %s", st)
	}
	if st := step(40); st != types.StateValueAlarm {
		t.Fatalf("after three: %s", st)
	}
	if st := step(1); st != types.StateValueOk {
		t.Fatalf("after a low minute: %s", st)
	}
	want := []string{"deep OK arn:ok transition", "deep ALARM arn:scale-out transition", "deep ALARM arn:scale-out again", "deep OK arn:ok transition"}
	if strings.Join(rec.runs, "\n") != strings.Join(want, "\n") {
		t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(rec.runs, "\n"), strings.Join(want, "\n"))
	}
	var summaries []string
	if err := s.History("deep/", false, func(_ string, it *types.AlarmHistoryItem) bool {
		summaries = append(summaries, aws.ToString(it.HistorySummary))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(summaries, "; "); got != `Alarm "deep" created; Alarm updated from INSUFFICIENT_DATA to OK; Alarm updated from OK to ALARM; Alarm updated from ALARM to OK` {
		t.Errorf("history: %s", got)
	}
}
