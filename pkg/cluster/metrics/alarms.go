package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The buckets of the alarms.
const (
	// AlarmsBucket holds an Alarm under its name.
	AlarmsBucket store.Bucket = "metric-alarms"
	// HistoryBucket holds an alarm's history items under
	// "<alarm name>/<unix nanoseconds, 20 digits>".
	HistoryBucket store.Bucket = "metric-alarm-history"
)

// Limits of the alarms.
const (
	// MaxAlarms bounds the alarms kept.
	MaxAlarms = 5000
	// MaxHistory is how many history items an alarm keeps (AWS keeps 30
	// days; a bound in items keeps the store bounded).
	MaxHistory = 100
)

// Alarm is stored in AlarmsBucket under its name: the SDK's MetricAlarm as
// DescribeAlarms answers it, and its tags.
type Alarm struct {
	Alarm types.MetricAlarm
	Tags  []types.Tag `json:",omitempty"`
}

// Name is the alarm's name.
func (a *Alarm) Name() string { return aws.ToString(a.Alarm.AlarmName) }

// ErrNoAlarm is returned for an alarm that does not exist.
var ErrNoAlarm = errors.New("alarm not found")

// ErrTooManyAlarms is returned when a new alarm would exceed MaxAlarms.
var ErrTooManyAlarms = errors.New("too many alarms")

// PutAlarm creates or replaces an alarm. A new alarm starts in
// INSUFFICIENT_DATA; a replaced one keeps its state, as CloudWatch does.
// The alarm's configuration time is set from the clock.
func (s *Store) PutAlarm(a *Alarm) error {
	now := s.o.Now()
	return s.o.Store.Update(func(tx store.Tx) error { return PutAlarmTx(tx, a, now) })
}

// PutAlarmTx is PutAlarm within a transaction of the caller's (Application
// Auto Scaling writes a policy and the alarms it owns together).
func PutAlarmTx(tx store.Tx, a *Alarm, now time.Time) error {
	next := *a
	var old Alarm
	err := tx.Get(AlarmsBucket, a.Name(), &old)
	switch {
	case errors.Is(err, store.ErrNotFound):
		n := 0
		if err := tx.Scan(AlarmsBucket, store.Range{}, func(string, []byte) error {
			if n++; n >= MaxAlarms {
				return store.ErrStopScan
			}
			return nil
		}); err != nil {
			return fmt.Errorf("count alarms: %w", err)
		}
		if n >= MaxAlarms {
			return fmt.Errorf("%w: the endpoint keeps %d alarms", ErrTooManyAlarms, MaxAlarms)
		}
		next.Alarm.StateValue = types.StateValueInsufficientData
		next.Alarm.StateReason = aws.String("Unchecked: Initial alarm creation")
		next.Alarm.StateUpdatedTimestamp = aws.Time(now)
		next.Alarm.StateTransitionedTimestamp = aws.Time(now)
		if err := addHistory(tx, a.Name(), now, types.HistoryItemTypeConfigurationUpdate,
			fmt.Sprintf("Alarm %q created", a.Name()), configData("Create", &next.Alarm)); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("read alarm %s: %w", a.Name(), err)
	default:
		next.Alarm.StateValue, next.Alarm.StateReason, next.Alarm.StateReasonData = old.Alarm.StateValue, old.Alarm.StateReason, old.Alarm.StateReasonData
		next.Alarm.StateUpdatedTimestamp, next.Alarm.StateTransitionedTimestamp = old.Alarm.StateUpdatedTimestamp, old.Alarm.StateTransitionedTimestamp
		if next.Tags == nil {
			next.Tags = old.Tags // tags are set at creation
		}
		if err := addHistory(tx, a.Name(), now, types.HistoryItemTypeConfigurationUpdate,
			fmt.Sprintf("Alarm %q updated", a.Name()), configData("Update", &next.Alarm)); err != nil {
			return err
		}
	}
	next.Alarm.AlarmConfigurationUpdatedTimestamp = aws.Time(now)
	if err := tx.Put(AlarmsBucket, a.Name(), &next); err != nil {
		return fmt.Errorf("write alarm %s: %w", a.Name(), err)
	}
	return nil
}

func configData(typ string, a *types.MetricAlarm) string {
	b, _ := json.Marshal(map[string]any{"version": "1.0", "type": typ, "updatedAlarm": map[string]any{
		"alarmName": aws.ToString(a.AlarmName), "namespace": aws.ToString(a.Namespace), "metricName": aws.ToString(a.MetricName),
		"statistic": a.Statistic, "period": aws.ToInt32(a.Period), "evaluationPeriods": aws.ToInt32(a.EvaluationPeriods),
		"threshold": aws.ToFloat64(a.Threshold), "comparisonOperator": a.ComparisonOperator}})
	return string(b)
}

// Alarms calls fn for each alarm whose name starts with prefix, in name
// order, from the name after `after`; fn returns false to stop.
func (s *Store) Alarms(prefix, after string, fn func(*Alarm) bool) error {
	return s.o.Store.View(func(tx store.Tx) error {
		r := store.Range{Prefix: prefix}
		if after != "" {
			r.From = after + "\x00"
		}
		return tx.Scan(AlarmsBucket, r, func(key string, raw []byte) error {
			var a Alarm
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("alarm %s: %w", key, err)
			}
			if !fn(&a) {
				return store.ErrStopScan
			}
			return nil
		})
	})
}

// Alarm returns the named alarm or ErrNoAlarm.
func (s *Store) Alarm(name string) (*Alarm, error) {
	var a Alarm
	err := s.o.Store.View(func(tx store.Tx) error { return tx.Get(AlarmsBucket, name, &a) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoAlarm, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read alarm %s: %w", name, err)
	}
	return &a, nil
}

// DeleteAlarms deletes the named alarms and their history, all or none:
// a name that does not exist is ErrNoAlarm.
func (s *Store) DeleteAlarms(names []string) error {
	return s.o.Store.Update(func(tx store.Tx) error { return DeleteAlarmsTx(tx, names, false) })
}

// DeleteAlarmsTx is DeleteAlarms within the caller's transaction;
// missingOK skips names that do not exist.
func DeleteAlarmsTx(tx store.Tx, names []string, missingOK bool) error {
	var found []string
	for _, n := range names {
		var a Alarm
		if err := tx.Get(AlarmsBucket, n, &a); errors.Is(err, store.ErrNotFound) {
			if missingOK {
				continue
			}
			return fmt.Errorf("%w: %s", ErrNoAlarm, n)
		} else if err != nil {
			return fmt.Errorf("read alarm %s: %w", n, err)
		}
		found = append(found, n)
	}
	for _, n := range found {
		var keys []string
		if err := store.ForEach(tx, HistoryBucket, n+"/", func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		}); err != nil {
			return fmt.Errorf("read alarm history %s: %w", n, err)
		}
		for _, k := range keys {
			if err := tx.Delete(HistoryBucket, k); err != nil {
				return err
			}
		}
		if err := tx.Delete(AlarmsBucket, n); err != nil {
			return fmt.Errorf("delete alarm %s: %w", n, err)
		}
	}
	return nil
}

// StateChange is an alarm's move to another state, as SetState and the
// evaluation make it.
type StateChange struct {
	Name       string
	State      types.StateValue
	Reason     string
	ReasonData string
}

// SetState moves the named alarm to c.State with c's reason, recording
// the history item; it returns the alarm as it was before and after, or
// ErrNoAlarm. A state equal to the current one only refreshes the reason
// (no history item, no transition).
func (s *Store) SetState(c StateChange) (before, after *Alarm, err error) {
	now := s.o.Now()
	err = s.o.Store.Update(func(tx store.Tx) error {
		var a Alarm
		if err := tx.Get(AlarmsBucket, c.Name, &a); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNoAlarm, c.Name)
		} else if err != nil {
			return fmt.Errorf("read alarm %s: %w", c.Name, err)
		}
		b := a
		before = &b
		old := a.Alarm.StateValue
		a.Alarm.StateReason = aws.String(c.Reason)
		a.Alarm.StateReasonData = nil
		if c.ReasonData != "" {
			a.Alarm.StateReasonData = aws.String(c.ReasonData)
		}
		a.Alarm.StateUpdatedTimestamp = aws.Time(now)
		if old != c.State {
			a.Alarm.StateValue = c.State
			a.Alarm.StateTransitionedTimestamp = aws.Time(now)
			data, _ := json.Marshal(map[string]any{"version": "1.0",
				"oldState": map[string]any{"stateValue": old, "stateReason": aws.ToString(before.Alarm.StateReason)},
				"newState": map[string]any{"stateValue": c.State, "stateReason": c.Reason}})
			if err := addHistory(tx, c.Name, now, types.HistoryItemTypeStateUpdate,
				fmt.Sprintf("Alarm updated from %s to %s", old, c.State), string(data)); err != nil {
				return err
			}
		}
		after = &a
		if err := tx.Put(AlarmsBucket, c.Name, &a); err != nil {
			return fmt.Errorf("write alarm %s: %w", c.Name, err)
		}
		return nil
	})
	return before, after, err
}

// AddHistory records an alarm history item (an action run, for example).
func (s *Store) AddHistory(name string, typ types.HistoryItemType, summary, data string) error {
	now := s.o.Now()
	return s.o.Store.Update(func(tx store.Tx) error { return addHistory(tx, name, now, typ, summary, data) })
}

// addHistory writes one history item and drops the alarm's oldest beyond
// MaxHistory.
func addHistory(tx store.Tx, name string, at time.Time, typ types.HistoryItemType, summary, data string) error {
	item := types.AlarmHistoryItem{AlarmName: aws.String(name), AlarmType: types.AlarmTypeMetricAlarm, HistoryItemType: typ,
		HistorySummary: aws.String(summary), HistoryData: aws.String(data), Timestamp: aws.Time(at)}
	key := fmt.Sprintf("%s/%020d", name, at.UnixNano())
	var keys []string
	if err := store.ForEach(tx, HistoryBucket, name+"/", func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return fmt.Errorf("read alarm history %s: %w", name, err)
	}
	for len(keys) >= MaxHistory {
		if err := tx.Delete(HistoryBucket, keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	if err := tx.Put(HistoryBucket, key, &item); err != nil {
		return fmt.Errorf("write alarm history %s: %w", name, err)
	}
	return nil
}

// History calls fn for the history items of the alarms whose name starts
// with prefix (an exact name: "name/"), newest first when newestFirst.
func (s *Store) History(prefix string, newestFirst bool, fn func(key string, item *types.AlarmHistoryItem) bool) error {
	return s.o.Store.View(func(tx store.Tx) error {
		return tx.Scan(HistoryBucket, store.Range{Prefix: prefix, Reverse: newestFirst}, func(key string, raw []byte) error {
			var it types.AlarmHistoryItem
			if err := json.Unmarshal(raw, &it); err != nil {
				return fmt.Errorf("alarm history %s: %w", key, err)
			}
			if !fn(key, &it) {
				return store.ErrStopScan
			}
			return nil
		})
	})
}

// Evaluate decides an alarm's state from its last EvaluationPeriods
// periods' statistic values (values[i] nil when the period has no data),
// oldest first, as CloudWatch does: missing periods are treated as
// TreatMissingData says (missing, ignore: left out; breaching;
// notBreaching); ALARM when at least DatapointsToAlarm of them breach;
// with none left, INSUFFICIENT_DATA (missing) or the current state
// (ignore); else OK. It returns the state and CloudWatch's reason text.
// now dates the reason data.
func Evaluate(a *types.MetricAlarm, values []*float64, times []time.Time, now time.Time) (types.StateValue, string, string) {
	n := len(values)
	m := int(aws.ToInt32(a.DatapointsToAlarm))
	if m <= 0 || m > n {
		m = n
	}
	treat := aws.ToString(a.TreatMissingData)
	threshold := aws.ToFloat64(a.Threshold)
	var present []float64
	var presentAt []time.Time
	breaching := 0
	for i, v := range values {
		switch {
		case v != nil:
			present = append(present, *v)
			presentAt = append(presentAt, times[i])
			if breaches(a.ComparisonOperator, *v, threshold) {
				breaching++
			}
		case treat == "breaching":
			breaching++
			present = append(present, math.NaN())
			presentAt = append(presentAt, times[i])
		case treat == "notBreaching":
			present = append(present, math.NaN())
			presentAt = append(presentAt, times[i])
		}
	}
	if len(present) == 0 {
		if treat == "ignore" && a.StateValue != "" {
			return a.StateValue, aws.ToString(a.StateReason), aws.ToString(a.StateReasonData)
		}
		return types.StateValueInsufficientData, fmt.Sprintf("Insufficient Data: %d datapoint%s unknown.", n, plural(n)), ""
	}
	var pts []string
	var recent []float64
	for i := len(present) - 1; i >= 0 && len(pts) < 5; i-- {
		if math.IsNaN(present[i]) {
			continue
		}
		pts = append(pts, fmt.Sprintf("%s (%s)", trimFloat(present[i]), presentAt[i].UTC().Format("02/01/06 15:04:05")))
		recent = append(recent, present[i])
	}
	data, _ := json.Marshal(map[string]any{"version": "1.0", "queryDate": now.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"statistic": a.Statistic, "period": aws.ToInt32(a.Period), "recentDatapoints": recent, "threshold": threshold,
		"evaluatedDatapoints": len(present)})
	if breaching >= m {
		return types.StateValueAlarm, fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints [%s] were %s the threshold (%s) (minimum %d datapoint%s for OK -> ALARM transition).",
			breaching, n, strings.Join(pts, ", "), opText(a.ComparisonOperator), trimFloat(threshold), m, plural(m)), string(data)
	}
	return types.StateValueOk, fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints [%s] were not %s the threshold (%s) (minimum %d datapoint%s for ALARM -> OK transition).",
		n-breaching, n, strings.Join(pts, ", "), opText(a.ComparisonOperator), trimFloat(threshold), 1, ""), string(data)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func trimFloat(f float64) string { return fmt.Sprintf("%.1f", f) }

// breaches compares v with the threshold by op.
func breaches(op types.ComparisonOperator, v, threshold float64) bool {
	switch op {
	case types.ComparisonOperatorGreaterThanOrEqualToThreshold:
		return v >= threshold
	case types.ComparisonOperatorGreaterThanThreshold:
		return v > threshold
	case types.ComparisonOperatorLessThanThreshold:
		return v < threshold
	case types.ComparisonOperatorLessThanOrEqualToThreshold:
		return v <= threshold
	}
	return false
}

func opText(op types.ComparisonOperator) string {
	switch op {
	case types.ComparisonOperatorGreaterThanOrEqualToThreshold:
		return "greater than or equal to"
	case types.ComparisonOperatorGreaterThanThreshold:
		return "greater than"
	case types.ComparisonOperatorLessThanThreshold:
		return "less than"
	}
	return "less than or equal to"
}

// Operators are the comparison operators alarms evaluate (the anomaly
// detection ones need a band this endpoint does not compute).
var Operators = []types.ComparisonOperator{types.ComparisonOperatorGreaterThanOrEqualToThreshold,
	types.ComparisonOperatorGreaterThanThreshold, types.ComparisonOperatorLessThanThreshold,
	types.ComparisonOperatorLessThanOrEqualToThreshold}
