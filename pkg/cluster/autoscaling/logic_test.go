package autoscaling

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
)

func TestTrackingCapacity(t *testing.T) {
	cases := []struct {
		cur           int32
		value, target float64
		high          bool
		want          int32
	}{
		{2, 100, 50, true, 4},   // twice the target: twice the tasks
		{2, 51, 50, true, 3},    // just above: at least one more
		{10, 90, 50, true, 18},  // proportional
		{10, 10, 50, false, 9},  // far below: a tenth at a time
		{40, 10, 50, false, 36}, // a tenth of 40
		{2, 40, 50, false, 2},   // ceil(1.6) = 2: nothing to remove
		{1, 1, 50, false, 1},    // ceil(0.02) = 1
	}
	for _, c := range cases {
		if got := trackingCapacity(c.cur, c.value, c.target, c.high); got != c.want {
			t.Errorf("trackingCapacity(%d, %v, %v, high %v) = %d, want %d", c.cur, c.value, c.target, c.high, got, c.want)
		}
	}
}

func TestStepCapacity(t *testing.T) {
	f := aws.Float64
	out := &types.StepScalingPolicyConfiguration{AdjustmentType: types.AdjustmentTypeChangeInCapacity, StepAdjustments: []types.StepAdjustment{
		{MetricIntervalLowerBound: f(0), MetricIntervalUpperBound: f(10), ScalingAdjustment: aws.Int32(1)},
		{MetricIntervalLowerBound: f(10), ScalingAdjustment: aws.Int32(3)}}}
	in := &types.StepScalingPolicyConfiguration{AdjustmentType: types.AdjustmentTypePercentChangeInCapacity, MinAdjustmentMagnitude: aws.Int32(2),
		StepAdjustments: []types.StepAdjustment{{MetricIntervalUpperBound: f(0), ScalingAdjustment: aws.Int32(-10)}}}
	exact := &types.StepScalingPolicyConfiguration{AdjustmentType: types.AdjustmentTypeExactCapacity,
		StepAdjustments: []types.StepAdjustment{{MetricIntervalLowerBound: f(0), ScalingAdjustment: aws.Int32(7)}}}
	cases := []struct {
		name       string
		c          *types.StepScalingPolicyConfiguration
		cur        int32
		value, thr float64
		want       int32
		ok         bool
	}{
		{"first step", out, 2, 105, 100, 3, true},
		{"second step from its lower bound", out, 2, 110, 100, 5, true},
		{"below the steps", out, 2, 99, 100, 2, false},
		{"percent with a minimum magnitude", in, 5, 80, 100, 3, true},
		{"percent of many", in, 50, 80, 100, 45, true},
		{"upper bound 0 holds the threshold", in, 50, 100, 100, 45, true},
		{"exact", exact, 2, 150, 100, 7, true},
	}
	for _, c := range cases {
		got, ok := stepCapacity(c.cur, c.c, c.value, c.thr)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestCheckStepConfig(t *testing.T) {
	f := aws.Float64
	gap := &types.StepScalingPolicyConfiguration{AdjustmentType: types.AdjustmentTypeChangeInCapacity, StepAdjustments: []types.StepAdjustment{
		{MetricIntervalLowerBound: f(0), MetricIntervalUpperBound: f(10), ScalingAdjustment: aws.Int32(1)},
		{MetricIntervalLowerBound: f(20), ScalingAdjustment: aws.Int32(3)}}}
	if err := checkStepConfig(gap); err == nil {
		t.Error("steps with a gap were accepted")
	}
}

func TestSchedules(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC) // a Monday
	act := &types.ScheduledAction{CreationTime: aws.Time(created)}
	cases := []struct {
		expr    string
		loc     *time.Location
		lastRun time.Time
		now     time.Time
		want    bool
	}{
		// 08:00 in New York is 13:00 UTC in January.
		{"cron(0 8 ? * MON-FRI *)", ny, time.Time{}, time.Date(2026, 1, 5, 13, 0, 20, 0, time.UTC), true},
		{"cron(0 8 ? * MON-FRI *)", ny, time.Time{}, time.Date(2026, 1, 5, 12, 59, 0, 0, time.UTC), false},
		{"cron(0 8 ? * MON-FRI *)", ny, time.Date(2026, 1, 5, 13, 0, 5, 0, time.UTC), time.Date(2026, 1, 5, 13, 0, 50, 0, time.UTC), false},
		// A leader that took over at 13:20 still runs the 13:00 run.
		{"cron(0 8 ? * MON-FRI *)", ny, time.Time{}, time.Date(2026, 1, 5, 13, 20, 0, 0, time.UTC), true},
		{"cron(0 8 ? * SAT,SUN *)", ny, time.Time{}, time.Date(2026, 1, 5, 13, 0, 0, 0, time.UTC), false},
		{"cron(*/15 * * * ? *)", time.UTC, time.Time{}, time.Date(2026, 1, 5, 12, 15, 0, 0, time.UTC), true},
		{"at(2026-01-05T07:30:00)", ny, time.Time{}, time.Date(2026, 1, 5, 12, 29, 0, 0, time.UTC), false},
		{"at(2026-01-05T07:30:00)", ny, time.Time{}, time.Date(2026, 1, 5, 12, 30, 0, 0, time.UTC), true},
		{"at(2026-01-05T07:30:00)", ny, time.Date(2026, 1, 5, 12, 30, 0, 0, time.UTC), time.Date(2026, 1, 5, 12, 31, 0, 0, time.UTC), false},
		{"rate(5 minutes)", time.UTC, time.Time{}, time.Date(2026, 1, 5, 12, 4, 0, 0, time.UTC), false},
		{"rate(5 minutes)", time.UTC, time.Time{}, time.Date(2026, 1, 5, 12, 5, 0, 0, time.UTC), true},
		{"rate(5 minutes)", time.UTC, time.Date(2026, 1, 5, 12, 5, 0, 0, time.UTC), time.Date(2026, 1, 5, 12, 9, 0, 0, time.UTC), false},
	}
	for _, c := range cases {
		sc, err := parseSchedule(c.expr, c.loc)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		last := int64(0)
		if !c.lastRun.IsZero() {
			last = c.lastRun.Unix()
		}
		if got := due(sc, act, last, c.loc, c.now); got != c.want {
			t.Errorf("%s at %s (last %v): due %v, want %v", c.expr, c.now, c.lastRun, got, c.want)
		}
	}
	for _, bad := range []string{"cron(0 8 * * MON *)", "cron(0 8 L * ? *)", "rate(1 minutes)", "rate(0 hours)", "at(2026-01-05)", "every day", "cron(61 * * * ? *)"} {
		if _, err := parseSchedule(bad, time.UTC); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}
