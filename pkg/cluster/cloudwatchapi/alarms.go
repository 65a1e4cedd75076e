package cloudwatchapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
)

// Limits of the alarm operations, as CloudWatch's.
const (
	maxAlarmNames    = 100
	maxActions       = 5
	maxDescribe      = 100
	maxEvaluationSec = 86400
	maxTags          = 50
)

// AlarmARN is an alarm's ARN.
func (s *Server) AlarmARN(name string) string {
	return fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:%s", s.o.Region, s.o.AccountID, name)
}

// checkActions refuses actions the endpoint cannot run: it runs
// Application Auto Scaling policies of its own region and account, and
// nothing else (no SNS, no EC2 actions), so an alarm never silently does
// nothing.
func (s *Server) checkActions(member string, acts []string) error {
	if len(acts) > maxActions {
		return invalidValue("The collection %s must not have a size greater than %d.", member, maxActions)
	}
	prefix := fmt.Sprintf("arn:aws:autoscaling:%s:%s:scalingPolicy:", s.o.Region, s.o.AccountID)
	for i, a := range acts {
		if !strings.HasPrefix(a, prefix) {
			return invalidValue("The value %s for parameter %s.member.%d is not supported: this endpoint runs only Application Auto Scaling policies (%s...).", a, member, i+1, prefix)
		}
	}
	return nil
}

func putMetricAlarm(s *Server, ctx context.Context, in *cloudwatch.PutMetricAlarmInput) (*cloudwatch.PutMetricAlarmOutput, error) {
	name := aws.ToString(in.AlarmName)
	if err := checkName("AlarmName", name, maxNameLen); err != nil {
		return nil, err
	}
	for _, u := range []struct {
		member string
		set    bool
	}{{"Metrics", in.Metrics != nil}, {"ExtendedStatistic", in.ExtendedStatistic != nil}, {"ThresholdMetricId", in.ThresholdMetricId != nil},
		{"EvaluationCriteria", in.EvaluationCriteria != nil}, {"EvaluationWindow", in.EvaluationWindow != nil},
		{"EvaluationInterval", in.EvaluationInterval != nil}, {"ActionConfiguration", in.ActionConfiguration != nil},
		{"WarmUpConfiguration", in.WarmUpConfiguration != nil}, {"EvaluateLowSampleCountPercentile", in.EvaluateLowSampleCountPercentile != nil}} {
		if u.set {
			return nil, invalidValue("The parameter %s is not supported by this endpoint: alarms evaluate one metric's statistic against a threshold.", u.member)
		}
	}
	if in.Statistic == "" {
		return nil, missing("Statistic")
	}
	if !slices.Contains(in.Statistic.Values(), in.Statistic) {
		return nil, invalidValue("The value %s for parameter Statistic is not a statistic.", in.Statistic)
	}
	if in.ComparisonOperator == "" {
		return nil, missing("ComparisonOperator")
	}
	if !slices.Contains(metrics.Operators, in.ComparisonOperator) {
		return nil, invalidValue("The value %s for parameter ComparisonOperator is not supported: use one of %v.", in.ComparisonOperator, metrics.Operators)
	}
	if in.Threshold == nil {
		return nil, missing("Threshold")
	}
	if err := finite("Threshold", *in.Threshold); err != nil {
		return nil, err
	}
	if in.EvaluationPeriods == nil {
		return nil, missing("EvaluationPeriods")
	}
	n := *in.EvaluationPeriods
	if n < 1 {
		return nil, invalidValue("The value %d for parameter EvaluationPeriods must be at least 1.", n)
	}
	if in.Period == nil {
		return nil, missing("Period")
	}
	p := *in.Period
	if p < 60 || p%60 != 0 {
		return nil, invalidValue("The parameter Period must be a multiple of 60 (high-resolution alarms are not evaluated).")
	}
	if int64(p)*int64(n) > maxEvaluationSec {
		return nil, invalidValue("The evaluation period (Period %d times EvaluationPeriods %d) must not exceed one day (86400 seconds).", p, n)
	}
	if m := in.DatapointsToAlarm; m != nil && (*m < 1 || *m > n) {
		return nil, invalidValue("The value %d for parameter DatapointsToAlarm must be from 1 to EvaluationPeriods (%d).", *m, n)
	}
	if t := aws.ToString(in.TreatMissingData); in.TreatMissingData != nil && !slices.Contains([]string{"breaching", "notBreaching", "ignore", "missing"}, t) {
		return nil, invalidValue("The value %s for parameter TreatMissingData is invalid: breaching, notBreaching, ignore or missing.", t)
	}
	if err := checkUnit("Unit", in.Unit); err != nil {
		return nil, err
	}
	if d := aws.ToString(in.AlarmDescription); len(d) > 1024 {
		return nil, invalidValue("The parameter AlarmDescription must be at most 1024 characters.")
	}
	ns := aws.ToString(in.Namespace)
	if err := checkNamespace("Namespace", ns, false); err != nil {
		return nil, err
	}
	if err := checkName("MetricName", aws.ToString(in.MetricName), maxNameLen); err != nil {
		return nil, err
	}
	if _, err := dimensions("Dimensions", in.Dimensions); err != nil {
		return nil, err
	}
	for _, acts := range []struct {
		member string
		list   []string
	}{{"AlarmActions", in.AlarmActions}, {"OKActions", in.OKActions}, {"InsufficientDataActions", in.InsufficientDataActions}} {
		if err := s.checkActions(acts.member, acts.list); err != nil {
			return nil, err
		}
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	enabled := in.ActionsEnabled
	if enabled == nil {
		enabled = aws.Bool(true)
	}
	a := &metrics.Alarm{Tags: in.Tags, Alarm: types.MetricAlarm{AlarmName: in.AlarmName, AlarmArn: aws.String(s.AlarmARN(name)),
		AlarmDescription: in.AlarmDescription, ActionsEnabled: enabled, AlarmActions: nonNil(in.AlarmActions),
		OKActions: nonNil(in.OKActions), InsufficientDataActions: nonNil(in.InsufficientDataActions),
		Namespace: in.Namespace, MetricName: in.MetricName, Dimensions: nonNil(in.Dimensions), Statistic: in.Statistic,
		Period: in.Period, EvaluationPeriods: in.EvaluationPeriods, DatapointsToAlarm: in.DatapointsToAlarm,
		Threshold: in.Threshold, ComparisonOperator: in.ComparisonOperator, TreatMissingData: in.TreatMissingData, Unit: in.Unit}}
	if err := s.o.Metrics.PutAlarm(a); errors.Is(err, metrics.ErrTooManyAlarms) {
		return nil, limitExceeded("%v", err)
	} else if err != nil {
		return nil, err
	}
	return &cloudwatch.PutMetricAlarmOutput{}, nil
}

func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

func checkTags(tags []types.Tag) error {
	if len(tags) > maxTags {
		return invalidValue("The collection Tags must not have a size greater than %d.", maxTags)
	}
	seen := map[string]bool{}
	for i, t := range tags {
		k := aws.ToString(t.Key)
		if err := checkName(fmt.Sprintf("Tags.member.%d.Key", i+1), k, 128); err != nil {
			return err
		}
		if t.Value == nil {
			return missing(fmt.Sprintf("Tags.member.%d.Value", i+1))
		}
		if len(*t.Value) > 256 {
			return invalidValue("The parameter Tags.member.%d.Value must be at most 256 characters.", i+1)
		}
		if strings.HasPrefix(k, "aws:") || seen[k] {
			return invalidValue("The value %s for parameter Tags.member.%d.Key is invalid (reserved or given twice).", k, i+1)
		}
		seen[k] = true
	}
	return nil
}

func pageToken(member, tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) == 0 {
		return "", invalidToken("The value %s for parameter %s is invalid.", tok, member)
	}
	return string(b), nil
}

func describeAlarms(s *Server, ctx context.Context, in *cloudwatch.DescribeAlarmsInput) (*cloudwatch.DescribeAlarmsOutput, error) {
	if in.ChildrenOfAlarmName != nil || in.ParentsOfAlarmName != nil {
		return nil, invalidValue("The parameters ChildrenOfAlarmName and ParentsOfAlarmName are not supported: this endpoint has no composite alarms.")
	}
	if len(in.AlarmNames) > maxAlarmNames {
		return nil, invalidValue("The collection AlarmNames must not have a size greater than %d.", maxAlarmNames)
	}
	if in.AlarmNames != nil && in.AlarmNamePrefix != nil {
		return nil, combination("The parameters AlarmNames and AlarmNamePrefix are mutually exclusive and you have specified both.")
	}
	if in.StateValue != "" && !slices.Contains(in.StateValue.Values(), in.StateValue) {
		return nil, invalidValue("The value %s for parameter StateValue is invalid.", in.StateValue)
	}
	limit := int(aws.ToInt32(in.MaxRecords))
	if in.MaxRecords != nil && (limit < 1 || limit > maxDescribe) {
		return nil, invalidValue("The value %d for parameter MaxRecords must be from 1 to %d.", limit, maxDescribe)
	}
	if limit == 0 {
		limit = 50
	}
	out := &cloudwatch.DescribeAlarmsOutput{MetricAlarms: []types.MetricAlarm{}, CompositeAlarms: []types.CompositeAlarm{}}
	if len(in.AlarmTypes) > 0 && !slices.Contains(in.AlarmTypes, types.AlarmTypeMetricAlarm) {
		return out, nil
	}
	after := ""
	if in.NextToken != nil {
		var err error
		if after, err = pageToken("NextToken", *in.NextToken); err != nil {
			return nil, err
		}
	}
	var last string
	err := s.o.Metrics.Alarms(aws.ToString(in.AlarmNamePrefix), after, func(a *metrics.Alarm) bool {
		switch {
		case in.AlarmNames != nil && !slices.Contains(in.AlarmNames, a.Name()),
			in.StateValue != "" && a.Alarm.StateValue != in.StateValue,
			in.ActionPrefix != nil && !slices.ContainsFunc(a.Alarm.AlarmActions, func(x string) bool { return strings.HasPrefix(x, *in.ActionPrefix) }):
			return true
		}
		if len(out.MetricAlarms) == limit {
			out.NextToken = aws.String(base64.RawURLEncoding.EncodeToString([]byte(last)))
			return false
		}
		out.MetricAlarms = append(out.MetricAlarms, a.Alarm)
		last = a.Name()
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func deleteAlarms(s *Server, ctx context.Context, in *cloudwatch.DeleteAlarmsInput) (*cloudwatch.DeleteAlarmsOutput, error) {
	if len(in.AlarmNames) == 0 {
		return nil, missing("AlarmNames")
	}
	if len(in.AlarmNames) > maxAlarmNames {
		return nil, invalidValue("The collection AlarmNames must not have a size greater than %d.", maxAlarmNames)
	}
	if err := s.o.Metrics.DeleteAlarms(in.AlarmNames); errors.Is(err, metrics.ErrNoAlarm) {
		return nil, notFound("%v", err)
	} else if err != nil {
		return nil, err
	}
	return &cloudwatch.DeleteAlarmsOutput{}, nil
}

func setAlarmState(s *Server, ctx context.Context, in *cloudwatch.SetAlarmStateInput) (*cloudwatch.SetAlarmStateOutput, error) {
	name := aws.ToString(in.AlarmName)
	if err := checkName("AlarmName", name, maxNameLen); err != nil {
		return nil, err
	}
	if in.StateValue == "" {
		return nil, missing("StateValue")
	}
	if !slices.Contains(in.StateValue.Values(), in.StateValue) {
		return nil, invalidValue("The value %s for parameter StateValue is invalid.", in.StateValue)
	}
	if in.StateReason == nil {
		return nil, missing("StateReason")
	}
	if len(*in.StateReason) > 1023 {
		return nil, invalidValue("The parameter StateReason must be at most 1023 characters.")
	}
	data := aws.ToString(in.StateReasonData)
	if data != "" && !json.Valid([]byte(data)) {
		return nil, invalidFormat("The parameter StateReasonData must be JSON.")
	}
	before, after, err := s.o.Metrics.SetState(metrics.StateChange{Name: name, State: in.StateValue, Reason: *in.StateReason, ReasonData: data})
	if errors.Is(err, metrics.ErrNoAlarm) {
		return nil, notFound("The alarm %s does not exist.", name)
	} else if err != nil {
		return nil, err
	}
	// CloudWatch runs the actions of a state set by hand (that is what
	// SetAlarmState is for: testing them); the next evaluation may move
	// the alarm back.
	if s.o.Actions != nil && before.Alarm.StateValue != after.Alarm.StateValue {
		if acts := metrics.ActionsFor(&after.Alarm, after.Alarm.StateValue); len(acts) > 0 {
			s.o.Actions.RunAlarmActions(ctx, after, acts, true, s.o.Now())
		}
	}
	return &cloudwatch.SetAlarmStateOutput{}, nil
}

func describeAlarmHistory(s *Server, ctx context.Context, in *cloudwatch.DescribeAlarmHistoryInput) (*cloudwatch.DescribeAlarmHistoryOutput, error) {
	if in.AlarmContributorId != nil {
		return nil, invalidValue("The parameter AlarmContributorId is not supported: this endpoint has no multi-contributor alarms.")
	}
	if in.HistoryItemType != "" && !slices.Contains(in.HistoryItemType.Values(), in.HistoryItemType) {
		return nil, invalidValue("The value %s for parameter HistoryItemType is invalid.", in.HistoryItemType)
	}
	limit := int(aws.ToInt32(in.MaxRecords))
	if in.MaxRecords != nil && (limit < 1 || limit > maxDescribe) {
		return nil, invalidValue("The value %d for parameter MaxRecords must be from 1 to %d.", limit, maxDescribe)
	}
	if limit == 0 {
		limit = maxDescribe
	}
	scan := in.ScanBy
	if scan == "" {
		scan = types.ScanByTimestampDescending
	}
	if !slices.Contains(scan.Values(), scan) {
		return nil, invalidValue("The value %s for parameter ScanBy is invalid.", scan)
	}
	out := &cloudwatch.DescribeAlarmHistoryOutput{AlarmHistoryItems: []types.AlarmHistoryItem{}}
	if len(in.AlarmTypes) > 0 && !slices.Contains(in.AlarmTypes, types.AlarmTypeMetricAlarm) {
		return out, nil
	}
	var items []types.AlarmHistoryItem
	prefix := ""
	if in.AlarmName != nil {
		prefix = *in.AlarmName + "/"
	}
	err := s.o.Metrics.History(prefix, false, func(_ string, it *types.AlarmHistoryItem) bool {
		ts := aws.ToTime(it.Timestamp)
		switch {
		case in.HistoryItemType != "" && it.HistoryItemType != in.HistoryItemType,
			in.StartDate != nil && ts.Before(*in.StartDate), in.EndDate != nil && !ts.Before(*in.EndDate):
			return true
		}
		items = append(items, *it)
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(items, func(a, b types.AlarmHistoryItem) int {
		c := aws.ToTime(a.Timestamp).Compare(aws.ToTime(b.Timestamp))
		if scan == types.ScanByTimestampDescending {
			return -c
		}
		return c
	})
	offset := 0
	if in.NextToken != nil {
		tok, err := pageToken("NextToken", *in.NextToken)
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Sscan(tok, &offset); err != nil || offset < 0 || offset > len(items) {
			return nil, invalidToken("The value %s for parameter NextToken is invalid.", *in.NextToken)
		}
	}
	end := min(len(items), offset+limit)
	out.AlarmHistoryItems = append(out.AlarmHistoryItems, items[offset:end]...)
	if end < len(items) {
		out.NextToken = aws.String(base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprint(end))))
	}
	return out, nil
}
