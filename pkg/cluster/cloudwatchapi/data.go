package cloudwatchapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
)

// CloudWatch's limits.
const (
	maxDatums          = 1000
	maxValues          = 150
	maxDimensions      = 30
	maxDatapoints      = 1440
	maxQueries         = 500
	maxGetDataPoints   = 100800
	listPage           = 500
	maxNameLen         = 255
	maxDimensionValLen = 1024
)

// checkName refuses an empty or over-long name of member.
func checkName(member, v string, max int) error {
	if v == "" {
		return missing(member)
	}
	if len(v) > max || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 }) {
		return invalidValue("The value for parameter %s must be 1 to %d printable characters.", member, max)
	}
	return nil
}

// checkNamespace refuses a namespace users may not write ("AWS/...").
func checkNamespace(member, ns string, forWrite bool) error {
	if err := checkName(member, ns, maxNameLen); err != nil {
		return err
	}
	if strings.HasPrefix(ns, ":") || forWrite && strings.HasPrefix(ns, "AWS/") {
		return invalidValue("The value %s for parameter %s is invalid.", ns, member)
	}
	return nil
}

// dimensions checks and converts a metric's dimensions.
func dimensions(member string, ds []types.Dimension) ([]metrics.Dimension, error) {
	if len(ds) > maxDimensions {
		return nil, invalidValue("The collection %s must not have a size greater than %d.", member, maxDimensions)
	}
	out := make([]metrics.Dimension, 0, len(ds))
	seen := map[string]bool{}
	for i, d := range ds {
		m := fmt.Sprintf("%s.member.%d", member, i+1)
		name, value := aws.ToString(d.Name), aws.ToString(d.Value)
		if err := checkName(m+".Name", name, maxNameLen); err != nil {
			return nil, err
		}
		if err := checkName(m+".Value", value, maxDimensionValLen); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, invalidValue("No metric may have duplicate dimension names: %s names %s twice.", member, name)
		}
		seen[name] = true
		out = append(out, metrics.Dimension{Name: name, Value: value})
	}
	return out, nil
}

// checkUnit refuses a unit CloudWatch does not know.
func checkUnit(member string, u types.StandardUnit) error {
	if u == "" || slices.Contains(u.Values(), u) {
		return nil
	}
	return invalidValue("The value %s for parameter %s is not one of the units CloudWatch knows.", u, member)
}

func finite(member string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return invalidValue("The value %v for parameter %s is invalid: it must be a finite number.", v, member)
	}
	if v != 0 && (math.Abs(v) > 1.174271e+108 || math.Abs(v) < 8.515920e-109) {
		return invalidValue("The value %v for parameter %s is out of range (8.515920e-109 to 1.174271e+108).", v, member)
	}
	return nil
}

func putMetricData(s *Server, ctx context.Context, in *cloudwatch.PutMetricDataInput) (*cloudwatch.PutMetricDataOutput, error) {
	ns := aws.ToString(in.Namespace)
	if err := checkNamespace("Namespace", ns, true); err != nil {
		return nil, err
	}
	if len(in.EntityMetricData) > 0 {
		return nil, invalidValue("The parameter EntityMetricData is not supported by this endpoint; send MetricData.")
	}
	if len(in.MetricData) == 0 {
		return nil, missing("MetricData")
	}
	if len(in.MetricData) > maxDatums {
		return nil, invalidValue("The collection MetricData must not have a size greater than %d.", maxDatums)
	}
	now := s.o.Now()
	var samples []metrics.Sample
	for i, d := range in.MetricData {
		m := fmt.Sprintf("MetricData.member.%d", i+1)
		sm, err := datum(m, ns, d, now)
		if err != nil {
			return nil, err
		}
		samples = append(samples, sm...)
	}
	if err := s.o.Metrics.Put(samples); errors.Is(err, metrics.ErrTooManySeries) {
		return nil, limitExceeded("%v", err)
	} else if err != nil {
		return nil, err
	}
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// datum checks one MetricDatum and returns its samples.
func datum(m, ns string, d types.MetricDatum, now time.Time) ([]metrics.Sample, error) {
	name := aws.ToString(d.MetricName)
	if err := checkName(m+".MetricName", name, maxNameLen); err != nil {
		return nil, err
	}
	dims, err := dimensions(m+".Dimensions", d.Dimensions)
	if err != nil {
		return nil, err
	}
	if err := checkUnit(m+".Unit", d.Unit); err != nil {
		return nil, err
	}
	if r := aws.ToInt32(d.StorageResolution); d.StorageResolution != nil && r != 1 && r != 60 {
		return nil, invalidValue("The value %d for parameter %s.StorageResolution is invalid: it must be 1 or 60.", r, m)
	}
	t := now
	if d.Timestamp != nil {
		t = *d.Timestamp
		switch {
		case now.Sub(t) > metrics.MaxPast:
			return nil, invalidValue("The parameter %s.Timestamp must specify a time no more than two weeks in the past.", m)
		case t.Sub(now) > metrics.MaxFuture:
			return nil, invalidValue("The parameter %s.Timestamp must specify a time no more than two hours in the future.", m)
		}
	}
	var given []string
	if d.Value != nil {
		given = append(given, m+".Value")
	}
	if d.StatisticValues != nil {
		given = append(given, m+".StatisticValues")
	}
	if d.Values != nil {
		given = append(given, m+".Values")
	}
	switch {
	case len(given) == 0:
		return nil, missing(m + ".Value")
	case len(given) > 1:
		return nil, combination("The parameters %s and %s are mutually exclusive and you have specified both.", given[0], given[1])
	case d.Counts != nil && d.Values == nil:
		return nil, combination("The parameter %s.Counts must be given with %s.Values.", m, m)
	}
	unit := string(d.Unit)
	if unit == "None" {
		unit = ""
	}
	id := metrics.MetricID{Namespace: ns, MetricName: name, Dimensions: dims}
	one := func(st metrics.StatSet) []metrics.Sample {
		return []metrics.Sample{{MetricID: id, Unit: unit, Time: t, Stat: st}}
	}
	switch {
	case d.Value != nil:
		if err := finite(m+".Value", *d.Value); err != nil {
			return nil, err
		}
		return one(metrics.Value(*d.Value)), nil
	case d.StatisticValues != nil:
		sv := d.StatisticValues
		for _, f := range []struct {
			name string
			v    *float64
		}{{"SampleCount", sv.SampleCount}, {"Sum", sv.Sum}, {"Minimum", sv.Minimum}, {"Maximum", sv.Maximum}} {
			if f.v == nil {
				return nil, missing(m + ".StatisticValues." + f.name)
			}
			if err := finite(m+".StatisticValues."+f.name, *f.v); err != nil {
				return nil, err
			}
		}
		st := metrics.StatSet{Count: *sv.SampleCount, Sum: *sv.Sum, Min: *sv.Minimum, Max: *sv.Maximum}
		if st.Count <= 0 || st.Min > st.Max {
			return nil, invalidValue("The parameter %s.StatisticValues must have a positive SampleCount and Minimum <= Maximum.", m)
		}
		return one(st), nil
	}
	if len(d.Values) > maxValues {
		return nil, invalidValue("The collection %s.Values must not have a size greater than %d.", m, maxValues)
	}
	if d.Counts != nil && len(d.Counts) != len(d.Values) {
		return nil, combination("The parameters %s.Values and %s.Counts must be of the same size.", m, m)
	}
	var st metrics.StatSet
	for j, v := range d.Values {
		if err := finite(fmt.Sprintf("%s.Values.member.%d", m, j+1), v); err != nil {
			return nil, err
		}
		c := 1.0
		if d.Counts != nil {
			c = d.Counts[j]
			if c <= 0 || math.IsNaN(c) || math.IsInf(c, 0) {
				return nil, invalidValue("The value %v for parameter %s.Counts.member.%d must be a positive number.", c, m, j+1)
			}
		}
		st.Add(metrics.StatSet{Count: c, Sum: v * c, Min: v, Max: v})
	}
	if st.Count == 0 {
		return nil, missing(m + ".Values")
	}
	return one(st), nil
}

// metricQuery checks a metric, a time range and a period and returns the
// store's query. prefix names the members ("" or "MetricDataQueries.member.1.MetricStat.").
func (s *Server) metricQuery(prefix string, metric *types.Metric, start, end *time.Time, period int32) (metrics.Query, error) {
	var q metrics.Query
	ns, name := aws.ToString(metric.Namespace), aws.ToString(metric.MetricName)
	if err := checkNamespace(prefix+"Namespace", ns, false); err != nil {
		return q, err
	}
	if err := checkName(prefix+"MetricName", name, maxNameLen); err != nil {
		return q, err
	}
	dims, err := dimensions(prefix+"Dimensions", metric.Dimensions)
	if err != nil {
		return q, err
	}
	if start == nil {
		return q, missing("StartTime")
	}
	if end == nil {
		return q, missing("EndTime")
	}
	if !start.Before(*end) {
		return q, invalidValue("The parameter StartTime must be less than the parameter EndTime.")
	}
	if period < 60 || period%60 != 0 {
		return q, invalidValue("The parameter %sPeriod must be a multiple of 60 (high-resolution periods are not kept).", prefix)
	}
	if step := s.o.Metrics.Step(*start); int64(period)%step != 0 {
		return q, invalidValue("The parameter %sPeriod must be a multiple of %d for data older than 15 days.", prefix, step)
	}
	return metrics.Query{MetricID: metrics.MetricID{Namespace: ns, MetricName: name, Dimensions: dims},
		Start: *start, End: *end, Period: int64(period)}, nil
}

// unitMatches reports whether a series of unit answers a request for want.
func unitMatches(want types.StandardUnit, unit string) bool {
	return want == "" || string(want) == unit || want == types.StandardUnitNone && unit == ""
}

func unitOf(unit string) types.StandardUnit {
	if unit == "" {
		return types.StandardUnitNone
	}
	return types.StandardUnit(unit)
}

func getMetricStatistics(s *Server, ctx context.Context, in *cloudwatch.GetMetricStatisticsInput) (*cloudwatch.GetMetricStatisticsOutput, error) {
	if len(in.ExtendedStatistics) > 0 {
		return nil, invalidValue("The parameter ExtendedStatistics is not supported by this endpoint: percentiles are not kept (statistic sets are).")
	}
	if len(in.Statistics) == 0 {
		return nil, missing("Statistics")
	}
	for i, st := range in.Statistics {
		if !slices.Contains(st.Values(), st) {
			return nil, invalidValue("The value %s for parameter Statistics.member.%d is not a statistic.", st, i+1)
		}
	}
	if err := checkUnit("Unit", in.Unit); err != nil {
		return nil, err
	}
	q, err := s.metricQuery("", &types.Metric{Namespace: in.Namespace, MetricName: in.MetricName, Dimensions: in.Dimensions},
		in.StartTime, in.EndTime, aws.ToInt32(in.Period))
	if err != nil {
		return nil, err
	}
	if n := (q.End.Unix() - q.Start.Unix() + q.Period - 1) / q.Period; n > maxDatapoints {
		return nil, combination("You have requested up to %d datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range.", n)
	}
	pts, unit, err := s.o.Metrics.Statistics(q)
	if err != nil {
		return nil, err
	}
	out := &cloudwatch.GetMetricStatisticsOutput{Label: in.MetricName, Datapoints: []types.Datapoint{}}
	if !unitMatches(in.Unit, unit) {
		return out, nil
	}
	for _, p := range pts {
		dp := types.Datapoint{Timestamp: aws.Time(p.Time), Unit: unitOf(unit)}
		for _, st := range in.Statistics {
			v := metrics.StatValue(p.Stat, string(st))
			switch st {
			case types.StatisticAverage:
				dp.Average = &v
			case types.StatisticSum:
				dp.Sum = &v
			case types.StatisticMinimum:
				dp.Minimum = &v
			case types.StatisticMaximum:
				dp.Maximum = &v
			case types.StatisticSampleCount:
				dp.SampleCount = &v
			}
		}
		out.Datapoints = append(out.Datapoints, dp)
	}
	return out, nil
}

var statNames = []string{"Average", "Sum", "Minimum", "Maximum", "SampleCount"}

var queryIDRE = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]*$`)

func getMetricData(s *Server, ctx context.Context, in *cloudwatch.GetMetricDataInput) (*cloudwatch.GetMetricDataOutput, error) {
	if len(in.MetricDataQueries) == 0 {
		return nil, missing("MetricDataQueries")
	}
	if len(in.MetricDataQueries) > maxQueries {
		return nil, invalidValue("The collection MetricDataQueries must not have a size greater than %d.", maxQueries)
	}
	if in.LabelOptions != nil {
		return nil, invalidValue("The parameter LabelOptions is not supported by this endpoint.")
	}
	scan := in.ScanBy
	if scan == "" {
		scan = types.ScanByTimestampDescending
	}
	if !slices.Contains(scan.Values(), scan) {
		return nil, invalidValue("The value %s for parameter ScanBy is invalid.", scan)
	}
	limit := int(aws.ToInt32(in.MaxDatapoints))
	if limit <= 0 {
		limit = maxGetDataPoints
	}
	offset := 0
	if in.NextToken != nil {
		b, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return nil, invalidToken("The NextToken %q is not valid.", *in.NextToken)
		}
		offset = n
	}
	seen := map[string]bool{}
	var results []types.MetricDataResult
	for i, mq := range in.MetricDataQueries {
		m := fmt.Sprintf("MetricDataQueries.member.%d.", i+1)
		id := aws.ToString(mq.Id)
		if id == "" {
			return nil, missing(m + "Id")
		}
		if !queryIDRE.MatchString(id) || len(id) > maxNameLen {
			return nil, invalidValue("The value %s for parameter %sId is invalid: it must start with a lower-case letter and hold only letters, digits and _.", id, m)
		}
		if seen[id] {
			return nil, invalidValue("The value %s for parameter %sId is used by another query.", id, m)
		}
		seen[id] = true
		if mq.Expression != nil {
			return nil, invalidValue("The parameter %sExpression is not supported by this endpoint: metric math is not evaluated; use MetricStat.", m)
		}
		if mq.AccountId != nil && *mq.AccountId != s.o.AccountID {
			return nil, invalidValue("The value %s for parameter %sAccountId is not this account.", *mq.AccountId, m)
		}
		ms := mq.MetricStat
		if ms == nil || ms.Metric == nil {
			return nil, missing(m + "MetricStat")
		}
		stat := aws.ToString(ms.Stat)
		if !slices.Contains(statNames, stat) {
			return nil, invalidValue("The value %s for parameter %sMetricStat.Stat is not supported: use one of %s (percentiles are not kept).", stat, m, strings.Join(statNames, ", "))
		}
		if err := checkUnit(m+"MetricStat.Unit", ms.Unit); err != nil {
			return nil, err
		}
		period := aws.ToInt32(ms.Period)
		if mq.Period != nil {
			period = *mq.Period
		}
		q, err := s.metricQuery(m+"MetricStat.Metric.", ms.Metric, in.StartTime, in.EndTime, period)
		if err != nil {
			return nil, err
		}
		if mq.ReturnData != nil && !*mq.ReturnData {
			continue
		}
		pts, unit, err := s.o.Metrics.Statistics(q)
		if err != nil {
			return nil, err
		}
		res := types.MetricDataResult{Id: mq.Id, Label: mq.Label, StatusCode: types.StatusCodeComplete,
			Timestamps: []time.Time{}, Values: []float64{}}
		if res.Label == nil {
			res.Label = ms.Metric.MetricName
		}
		if unitMatches(ms.Unit, unit) {
			for _, p := range pts {
				res.Timestamps = append(res.Timestamps, p.Time)
				res.Values = append(res.Values, metrics.StatValue(p.Stat, stat))
			}
		}
		if scan == types.ScanByTimestampDescending {
			slices.Reverse(res.Timestamps)
			slices.Reverse(res.Values)
		}
		results = append(results, res)
	}
	// Pages cut the concatenation of the results at limit datapoints.
	out := &cloudwatch.GetMetricDataOutput{MetricDataResults: []types.MetricDataResult{}}
	skip, room, total := offset, limit, 0
	for _, res := range results {
		n := len(res.Values)
		total += n
		from := min(skip, n)
		skip -= from
		to := min(n, from+room)
		room -= to - from
		if from == n && n > 0 {
			continue
		}
		res.Timestamps, res.Values = res.Timestamps[from:to], res.Values[from:to]
		if to < n {
			res.StatusCode = types.StatusCodePartialData
		}
		out.MetricDataResults = append(out.MetricDataResults, res)
	}
	if next := offset + limit; next < total {
		out.NextToken = aws.String(base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(next))))
	}
	return out, nil
}

func listMetrics(s *Server, ctx context.Context, in *cloudwatch.ListMetricsInput) (*cloudwatch.ListMetricsOutput, error) {
	f := metrics.Filter{Namespace: aws.ToString(in.Namespace), MetricName: aws.ToString(in.MetricName)}
	if f.Namespace != "" {
		if err := checkNamespace("Namespace", f.Namespace, false); err != nil {
			return nil, err
		}
	}
	if len(in.Dimensions) > 10 {
		return nil, invalidValue("The collection Dimensions must not have a size greater than 10.")
	}
	for i, d := range in.Dimensions {
		m := fmt.Sprintf("Dimensions.member.%d", i+1)
		if err := checkName(m+".Name", aws.ToString(d.Name), maxNameLen); err != nil {
			return nil, err
		}
		f.Dimensions = append(f.Dimensions, metrics.Dimension{Name: aws.ToString(d.Name), Value: aws.ToString(d.Value)})
	}
	switch in.RecentlyActive {
	case "":
	case types.RecentlyActivePt3h:
		f.ActiveSince = s.o.Now().Add(-3 * time.Hour)
	default:
		return nil, invalidValue("The value %s for parameter RecentlyActive is invalid: PT3H is.", in.RecentlyActive)
	}
	out := &cloudwatch.ListMetricsOutput{Metrics: []types.Metric{}}
	if in.OwningAccount != nil && *in.OwningAccount != s.o.AccountID {
		return out, nil
	}
	after := ""
	if in.NextToken != nil {
		b, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if err != nil || len(b) == 0 {
			return nil, invalidValue("The value %s for parameter NextToken is invalid.", *in.NextToken)
		}
		after = string(b)
	}
	var last string
	err := s.o.Metrics.List(f, after, func(key string, sr *metrics.Series) bool {
		if len(out.Metrics) == listPage {
			out.NextToken = aws.String(base64.RawURLEncoding.EncodeToString([]byte(last)))
			return false
		}
		m := types.Metric{Namespace: aws.String(sr.Namespace), MetricName: aws.String(sr.MetricName), Dimensions: []types.Dimension{}}
		for _, d := range sr.Dimensions {
			m.Dimensions = append(m.Dimensions, types.Dimension{Name: aws.String(d.Name), Value: aws.String(d.Value)})
		}
		out.Metrics = append(out.Metrics, m)
		if aws.ToBool(in.IncludeLinkedAccounts) {
			out.OwningAccounts = append(out.OwningAccounts, s.o.AccountID)
		}
		last = key
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
