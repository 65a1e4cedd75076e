package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Target tracking's alarms for ECS, as Application Auto Scaling creates
// them: the high alarm fires after 3 one-minute periods above the target,
// the low one after 15 periods below 90 % of it, so that it scales out
// fast and in slowly.
const (
	highPeriods     = 3
	lowPeriods      = 15
	lowFraction     = 0.9
	defaultCooldown = 300 // seconds, ECS's default for both directions
)

// ownedAlarms are the alarms a target tracking policy created.
func ownedAlarms(p *types.ScalingPolicy) []string {
	if p.PolicyType != types.PolicyTypeTargetTrackingScaling {
		return nil
	}
	var names []string
	for _, a := range p.Alarms {
		names = append(names, aws.ToString(a.AlarmName))
	}
	return names
}

// trackedMetric is the metric a target tracking configuration follows.
func trackedMetric(resource string, c *types.TargetTrackingScalingPolicyConfiguration) (ns, name string, dims []cwtypes.Dimension, stat cwtypes.Statistic, unit cwtypes.StandardUnit, err error) {
	cluster, service, _ := serviceOf(resource)
	ecsDims := []cwtypes.Dimension{{Name: aws.String("ClusterName"), Value: aws.String(cluster)}, {Name: aws.String("ServiceName"), Value: aws.String(service)}}
	switch {
	case c.PredefinedMetricSpecification != nil && c.CustomizedMetricSpecification != nil:
		return "", "", nil, "", "", validation("PredefinedMetricSpecification and CustomizedMetricSpecification are mutually exclusive")
	case c.PredefinedMetricSpecification != nil:
		p := c.PredefinedMetricSpecification
		switch p.PredefinedMetricType {
		case types.MetricTypeECSServiceAverageCPUUtilization:
			return metrics.ECSNamespace, metrics.CPUUtilization, ecsDims, cwtypes.StatisticAverage, "", nil
		case types.MetricTypeECSServiceAverageMemoryUtilization:
			return metrics.ECSNamespace, metrics.MemoryUtilization, ecsDims, cwtypes.StatisticAverage, "", nil
		case types.MetricTypeALBRequestCountPerTarget:
			// ResourceLabel: app/<lb>/<id>/targetgroup/<tg>/<id>.
			label := aws.ToString(p.ResourceLabel)
			i := strings.Index(label, "/targetgroup/")
			if !strings.HasPrefix(label, "app/") || i < 0 {
				return "", "", nil, "", "", validation("PredefinedMetricSpecification.ResourceLabel must be app/<load balancer>/<id>/targetgroup/<target group>/<id> for ALBRequestCountPerTarget, not %q", label)
			}
			return "AWS/ApplicationELB", "RequestCountPerTarget",
				[]cwtypes.Dimension{{Name: aws.String("TargetGroup"), Value: aws.String(label[i+1:])}}, cwtypes.StatisticSum, "", nil
		}
		return "", "", nil, "", "", validation("Unsupported predefined metric type %s for an ECS service: ECSServiceAverageCPUUtilization, ECSServiceAverageMemoryUtilization and ALBRequestCountPerTarget are", p.PredefinedMetricType)
	case c.CustomizedMetricSpecification != nil:
		m := c.CustomizedMetricSpecification
		if m.Metrics != nil {
			return "", "", nil, "", "", validation("CustomizedMetricSpecification.Metrics (metric math) is not supported by this endpoint; name one metric")
		}
		if m.Namespace == nil || m.MetricName == nil || m.Statistic == "" {
			return "", "", nil, "", "", validation("CustomizedMetricSpecification needs Namespace, MetricName and Statistic")
		}
		for _, d := range m.Dimensions {
			dims = append(dims, cwtypes.Dimension{Name: d.Name, Value: d.Value})
		}
		return *m.Namespace, *m.MetricName, dims, cwtypes.Statistic(m.Statistic), cwtypes.StandardUnit(aws.ToString(m.Unit)), nil
	}
	return "", "", nil, "", "", validation("A target tracking policy needs PredefinedMetricSpecification or CustomizedMetricSpecification")
}

func checkStepConfig(c *types.StepScalingPolicyConfiguration) error {
	if c == nil {
		return validation("StepScalingPolicyConfiguration is required for policy type StepScaling")
	}
	if !slices.Contains(c.AdjustmentType.Values(), c.AdjustmentType) {
		return validation("StepScalingPolicyConfiguration.AdjustmentType must be ChangeInCapacity, PercentChangeInCapacity or ExactCapacity")
	}
	if c.MetricAggregationType != "" && !slices.Contains(c.MetricAggregationType.Values(), c.MetricAggregationType) {
		return validation("StepScalingPolicyConfiguration.MetricAggregationType must be Average, Minimum or Maximum")
	}
	if c.MinAdjustmentMagnitude != nil && c.AdjustmentType != types.AdjustmentTypePercentChangeInCapacity {
		return validation("StepScalingPolicyConfiguration.MinAdjustmentMagnitude is only for PercentChangeInCapacity")
	}
	if len(c.StepAdjustments) == 0 {
		return validation("StepScalingPolicyConfiguration.StepAdjustments must hold at least one step")
	}
	type iv struct{ lo, hi float64 }
	var ivs []iv
	for i, st := range c.StepAdjustments {
		if st.ScalingAdjustment == nil {
			return validation("StepScalingPolicyConfiguration.StepAdjustments.%d.ScalingAdjustment is required", i+1)
		}
		lo, hi := math.Inf(-1), math.Inf(1)
		if st.MetricIntervalLowerBound != nil {
			lo = *st.MetricIntervalLowerBound
		}
		if st.MetricIntervalUpperBound != nil {
			hi = *st.MetricIntervalUpperBound
		}
		if lo >= hi {
			return validation("StepScalingPolicyConfiguration.StepAdjustments.%d: the lower bound must be less than the upper bound", i+1)
		}
		ivs = append(ivs, iv{lo, hi})
	}
	slices.SortFunc(ivs, func(a, b iv) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	for i := 1; i < len(ivs); i++ {
		if ivs[i].lo != ivs[i-1].hi {
			return validation("StepScalingPolicyConfiguration.StepAdjustments: step intervals must not overlap nor leave gaps (%v to %v, then %v)", ivs[i-1].lo, ivs[i-1].hi, ivs[i].lo)
		}
	}
	return nil
}

func putScalingPolicy(s *Server, _ context.Context, in *aas.PutScalingPolicyInput) (*aas.PutScalingPolicyOutput, error) {
	r, err := requireRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.PolicyName)
	if name == "" || len(name) > 256 || strings.ContainsAny(name, ":/") {
		return nil, validation("PolicyName must be 1 to 256 characters without ':' or '/', not %q", name)
	}
	if in.PredictiveScalingPolicyConfiguration != nil || in.PolicyType == types.PolicyTypePredictiveScaling {
		return nil, validation("PredictiveScaling is not supported by this endpoint")
	}
	policyType := in.PolicyType
	if policyType == "" {
		policyType = types.PolicyTypeStepScaling
	}
	switch policyType {
	case types.PolicyTypeStepScaling:
		if in.TargetTrackingScalingPolicyConfiguration != nil {
			return nil, validation("TargetTrackingScalingPolicyConfiguration is not allowed for policy type StepScaling")
		}
		if err := checkStepConfig(in.StepScalingPolicyConfiguration); err != nil {
			return nil, err
		}
	case types.PolicyTypeTargetTrackingScaling:
		c := in.TargetTrackingScalingPolicyConfiguration
		if c == nil {
			return nil, validation("TargetTrackingScalingPolicyConfiguration is required for policy type TargetTrackingScaling")
		}
		if in.StepScalingPolicyConfiguration != nil {
			return nil, validation("StepScalingPolicyConfiguration is not allowed for policy type TargetTrackingScaling")
		}
		if c.TargetValue == nil || *c.TargetValue <= 0 || math.IsInf(*c.TargetValue, 0) || math.IsNaN(*c.TargetValue) {
			return nil, validation("TargetTrackingScalingPolicyConfiguration.TargetValue must be a positive number")
		}
		if _, _, _, _, _, err := trackedMetric(r.Resource, c); err != nil {
			return nil, err
		}
		for _, cd := range []*int32{c.ScaleInCooldown, c.ScaleOutCooldown} {
			if cd != nil && (*cd < 0 || *cd > 31536000) {
				return nil, validation("Cooldowns must be from 0 to 31536000 seconds")
			}
		}
	default:
		return nil, validation("PolicyType must be StepScaling or TargetTrackingScaling, not %s", in.PolicyType)
	}
	now := s.o.Now()
	out := &aas.PutScalingPolicyOutput{}
	err = s.o.Store.Update(func(tx store.Tx) error {
		if _, err := mustTarget(tx, r.Resource); err != nil {
			return err
		}
		key := childKey(r.Resource, name)
		var old Policy
		id := newID()
		created := now
		var oldAlarms []string
		err := tx.Get(PoliciesBucket, key, &old)
		switch {
		case errors.Is(err, store.ErrNotFound):
			n := 0
			if err := children(tx, PoliciesBucket, r.Resource, func(string, []byte) error { n++; return nil }); err != nil {
				return err
			}
			if n >= maxPoliciesPerTarget {
				return limitExceeded("A scalable target may have at most %d scaling policies", maxPoliciesPerTarget)
			}
		case err != nil:
			return fmt.Errorf("read scaling policy: %w", err)
		default:
			if old.Policy.PolicyType != policyType {
				return validation("Policy %s is of type %s; delete it to change its type", name, old.Policy.PolicyType)
			}
			_, rest, _ := strings.Cut(aws.ToString(old.Policy.PolicyARN), ":scalingPolicy:")
			id, _, _ = strings.Cut(rest, ":")
			created = aws.ToTime(old.Policy.CreationTime)
			oldAlarms = ownedAlarms(&old.Policy)
		}
		p := types.ScalingPolicy{PolicyARN: aws.String(s.policyARN(id, r.Resource, name)), PolicyName: aws.String(name),
			PolicyType: policyType, ResourceId: aws.String(r.Resource), ScalableDimension: r.Dimension, ServiceNamespace: r.Namespace,
			CreationTime: aws.Time(created), StepScalingPolicyConfiguration: in.StepScalingPolicyConfiguration,
			TargetTrackingScalingPolicyConfiguration: in.TargetTrackingScalingPolicyConfiguration, Alarms: []types.Alarm{}}
		if policyType == types.PolicyTypeTargetTrackingScaling {
			alarms, err := s.trackingAlarms(&p, id)
			if err != nil {
				return err
			}
			var keep []string
			for _, a := range alarms {
				if err := metrics.PutAlarmTx(tx, a, now); err != nil {
					return err
				}
				keep = append(keep, a.Name())
				p.Alarms = append(p.Alarms, types.Alarm{AlarmName: a.Alarm.AlarmName, AlarmARN: a.Alarm.AlarmArn})
			}
			var drop []string
			for _, n := range oldAlarms {
				if !slices.Contains(keep, n) {
					drop = append(drop, n)
				}
			}
			if err := metrics.DeleteAlarmsTx(tx, drop, true); err != nil {
				return err
			}
		}
		if err := tx.Put(PoliciesBucket, key, &Policy{Policy: p}); err != nil {
			return fmt.Errorf("write scaling policy: %w", err)
		}
		out.PolicyARN, out.Alarms = p.PolicyARN, p.Alarms
		return nil
	})
	if errors.Is(err, metrics.ErrTooManyAlarms) {
		return nil, limitExceeded("%v", err)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// trackingAlarms are the alarms a target tracking policy owns: high
// (scale out) and, unless DisableScaleIn, low (scale in), named as AWS
// names them, their action the policy.
func (s *Server) trackingAlarms(p *types.ScalingPolicy, id string) ([]*metrics.Alarm, error) {
	c := p.TargetTrackingScalingPolicyConfiguration
	resource := aws.ToString(p.ResourceId)
	ns, name, dims, stat, unit, err := trackedMetric(resource, c)
	if err != nil {
		return nil, err
	}
	target := *c.TargetValue
	mk := func(kind string, periods int32, threshold float64, op cwtypes.ComparisonOperator) *metrics.Alarm {
		alarm := fmt.Sprintf("TargetTracking-%s-%s-%s", resource, kind, id)
		return &metrics.Alarm{Alarm: cwtypes.MetricAlarm{AlarmName: aws.String(alarm),
			AlarmArn:         aws.String(fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:%s", s.o.Region, s.o.AccountID, alarm)),
			AlarmDescription: aws.String(fmt.Sprintf("DO NOT EDIT OR DELETE. For TargetTrackingScaling policy %s.", aws.ToString(p.PolicyARN))),
			ActionsEnabled:   aws.Bool(true), AlarmActions: []string{aws.ToString(p.PolicyARN)}, OKActions: []string{}, InsufficientDataActions: []string{},
			Namespace: aws.String(ns), MetricName: aws.String(name), Dimensions: dims, Statistic: stat, Unit: unit,
			Period: aws.Int32(60), EvaluationPeriods: aws.Int32(periods), DatapointsToAlarm: aws.Int32(periods),
			Threshold: aws.Float64(threshold), ComparisonOperator: op}}
	}
	alarms := []*metrics.Alarm{mk("AlarmHigh", highPeriods, target, cwtypes.ComparisonOperatorGreaterThanThreshold)}
	if !aws.ToBool(c.DisableScaleIn) {
		alarms = append(alarms, mk("AlarmLow", lowPeriods, target*lowFraction, cwtypes.ComparisonOperatorLessThanThreshold))
	}
	return alarms, nil
}

func describeScalingPolicies(s *Server, _ context.Context, in *aas.DescribeScalingPoliciesInput) (*aas.DescribeScalingPoliciesOutput, error) {
	r, err := checkRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	var all []types.ScalingPolicy
	err = s.o.Store.View(func(tx store.Tx) error {
		all = nil
		prefix := ""
		if r.Resource != "" {
			prefix = r.Resource + "#"
		}
		return store.ForEach(tx, PoliciesBucket, prefix, func(k string, raw []byte) error {
			p, err := decode[Policy](raw)
			if err != nil {
				return fmt.Errorf("scaling policy %s: %w", k, err)
			}
			if len(in.PolicyNames) == 0 || slices.Contains(in.PolicyNames, aws.ToString(p.Policy.PolicyName)) {
				all = append(all, p.Policy)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	items, next, err := page(all, func(p types.ScalingPolicy) string {
		return childKey(aws.ToString(p.ResourceId), aws.ToString(p.PolicyName))
	},
		in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &aas.DescribeScalingPoliciesOutput{ScalingPolicies: nonNil(items), NextToken: next}, nil
}

func deleteScalingPolicy(s *Server, _ context.Context, in *aas.DeleteScalingPolicyInput) (*aas.DeleteScalingPolicyOutput, error) {
	r, err := requireRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.PolicyName)
	err = s.o.Store.Update(func(tx store.Tx) error {
		var p Policy
		if err := tx.Get(PoliciesBucket, childKey(r.Resource, name), &p); errors.Is(err, store.ErrNotFound) {
			return notFound("No scaling policy found for service namespace: ecs, resource ID: %s, scalable dimension: ecs:service:DesiredCount, policy name: %s", r.Resource, name)
		} else if err != nil {
			return fmt.Errorf("read scaling policy: %w", err)
		}
		if err := metrics.DeleteAlarmsTx(tx, ownedAlarms(&p.Policy), true); err != nil {
			return err
		}
		return tx.Delete(PoliciesBucket, childKey(r.Resource, name))
	})
	if err != nil {
		return nil, err
	}
	return &aas.DeleteScalingPolicyOutput{}, nil
}
