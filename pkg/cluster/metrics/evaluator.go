package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// ActionRunner runs an alarm's actions for its state (Application Auto
// Scaling policies). transition says whether the alarm just moved to the
// state; CloudWatch invokes scaling actions again every minute the alarm
// stays in it. at is the minute of the evaluation (the clock's time for
// SetAlarmState): a runner that must act once per evaluation keys on it.
type ActionRunner interface {
	RunAlarmActions(ctx context.Context, a *Alarm, actions []string, transition bool, at time.Time)
}

// ActionsFor is what an alarm does in state.
func ActionsFor(a *types.MetricAlarm, state types.StateValue) []string {
	if a.ActionsEnabled != nil && !*a.ActionsEnabled {
		return nil
	}
	switch state {
	case types.StateValueAlarm:
		return a.AlarmActions
	case types.StateValueOk:
		return a.OKActions
	}
	return a.InsufficientDataActions
}

// EvaluateAlarms evaluates every alarm once at the clock's current minute:
// the last EvaluationPeriods periods ending at the start of that minute.
// A changed state is written with its history item; the actions of the
// state run (runner may be nil). It returns how many alarms changed state.
func (s *Store) EvaluateAlarms(ctx context.Context, runner ActionRunner) (int, error) {
	now := s.o.Now()
	end := now.Truncate(time.Minute)
	var alarms []*Alarm
	if err := s.Alarms("", "", func(a *Alarm) bool {
		alarms = append(alarms, a)
		return true
	}); err != nil {
		return 0, fmt.Errorf("evaluate alarms: %w", err)
	}
	changed := 0
	for _, a := range alarms {
		state, reason, data, err := s.evaluate(&a.Alarm, end, now)
		if err != nil {
			return changed, fmt.Errorf("evaluate alarm %s: %w", a.Name(), err)
		}
		cur := a
		transition := state != a.Alarm.StateValue
		if transition {
			_, after, err := s.SetState(StateChange{Name: a.Name(), State: state, Reason: reason, ReasonData: data})
			if err != nil {
				return changed, fmt.Errorf("evaluate alarm %s: %w", a.Name(), err)
			}
			cur = after
			changed++
		}
		if acts := ActionsFor(&cur.Alarm, state); runner != nil && len(acts) > 0 {
			runner.RunAlarmActions(ctx, cur, acts, transition, end)
		}
	}
	return changed, nil
}

// evaluate reads an alarm's periods and decides its state.
func (s *Store) evaluate(a *types.MetricAlarm, end, now time.Time) (types.StateValue, string, string, error) {
	values, times, err := s.window(a, end)
	if err != nil {
		return "", "", "", err
	}
	state, reason, data := Evaluate(a, values, times, now)
	return state, reason, data, nil
}

// window returns an alarm's last EvaluationPeriods periods ending at end:
// each period's statistic (nil without data, or data in another unit) and
// start, oldest first.
func (s *Store) window(a *types.MetricAlarm, end time.Time) ([]*float64, []time.Time, error) {
	period := int64(aws.ToInt32(a.Period))
	n := int64(aws.ToInt32(a.EvaluationPeriods))
	start := end.Add(-time.Duration(n*period) * time.Second)
	id := MetricID{Namespace: aws.ToString(a.Namespace), MetricName: aws.ToString(a.MetricName)}
	for _, d := range a.Dimensions {
		id.Dimensions = append(id.Dimensions, Dimension{Name: aws.ToString(d.Name), Value: aws.ToString(d.Value)})
	}
	pts, unit, err := s.Statistics(Query{MetricID: id, Start: start, End: end, Period: period})
	if err != nil {
		return nil, nil, err
	}
	values := make([]*float64, n)
	times := make([]time.Time, n)
	for i := range times {
		times[i] = start.Add(time.Duration(int64(i)*period) * time.Second)
	}
	unitOK := a.Unit == "" || string(a.Unit) == unit || a.Unit == types.StandardUnitNone && unit == ""
	for _, p := range pts {
		i := (p.Time.Unix() - start.Unix()) / period
		if i >= 0 && i < n && unitOK {
			v := StatValue(p.Stat, string(a.Statistic))
			values[i] = &v
		}
	}
	return values, times, nil
}

// AlarmValue is the newest value an alarm evaluated at the minute at:
// what a scaling policy compares with its target or threshold. false when
// the evaluation window has no data.
func (s *Store) AlarmValue(a *types.MetricAlarm, at time.Time) (float64, bool, error) {
	values, _, err := s.window(a, at.Truncate(time.Minute))
	if err != nil {
		return 0, false, err
	}
	for i := len(values) - 1; i >= 0; i-- {
		if values[i] != nil {
			return *values[i], true, nil
		}
	}
	return 0, false, nil
}

// StatValue is one statistic of a set, by CloudWatch's name (Average, Sum,
// Minimum, Maximum, SampleCount).
func StatValue(st StatSet, name string) float64 {
	switch name {
	case "Average":
		return st.Sum / st.Count
	case "Sum":
		return st.Sum
	case "Minimum":
		return st.Min
	case "Maximum":
		return st.Max
	}
	return st.Count
}

// RunEvaluator evaluates the alarms once for every minute the clock
// reaches (looking every tick) until ctx ends (the leader runs it);
// failures go to fail.
func (s *Store) RunEvaluator(ctx context.Context, tick time.Duration, runner ActionRunner, fail func(error)) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var last time.Time
	for {
		if m := s.o.Now().Truncate(time.Minute); !m.Equal(last) {
			last = m
			if _, err := s.EvaluateAlarms(ctx, runner); err != nil {
				fail(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
