package autoscaling

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/berth-dev/berth/pkg/cluster/metrics"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// trackingCapacity is target tracking's new capacity when its high
// (scale out) or low (scale in) alarm fires with the metric at value:
// proportional, as AWS computes it (capacity × value / target, rounded
// up). Out adds at least one; in removes at most a tenth of the capacity
// (at least one) per action, so that it scales in slowly.
func trackingCapacity(cur int32, value, target float64, high bool) int32 {
	want := int32(math.Ceil(float64(cur) * value / target))
	if high {
		return max(want, cur+1)
	}
	step := max(1, cur/10)
	return max(want, cur-step)
}

// stepCapacity is a step scaling policy's new capacity when its alarm
// (threshold) fires with the metric at value: the step whose interval,
// relative to the threshold, holds value - threshold, applied by the
// adjustment type. false when no step holds it.
func stepCapacity(cur int32, c *types.StepScalingPolicyConfiguration, value, threshold float64) (int32, bool) {
	diff := value - threshold
	for _, st := range c.StepAdjustments {
		lo, hi := math.Inf(-1), math.Inf(1)
		if st.MetricIntervalLowerBound != nil {
			lo = *st.MetricIntervalLowerBound
		}
		if st.MetricIntervalUpperBound != nil {
			hi = *st.MetricIntervalUpperBound
		}
		// A step holds [lower, upper); the step ending at +inf holds its
		// upper bound too when the lower is -inf (AWS: "lower < x <= upper"
		// below the threshold, "lower <= x < upper" above).
		in := diff >= lo && diff < hi
		if hi <= 0 {
			in = diff > lo && diff <= hi
		}
		if !in {
			continue
		}
		adj := aws.ToInt32(st.ScalingAdjustment)
		switch c.AdjustmentType {
		case types.AdjustmentTypeExactCapacity:
			return adj, true
		case types.AdjustmentTypePercentChangeInCapacity:
			d := int32(float64(cur) * float64(adj) / 100)
			if d == 0 && adj != 0 {
				d = int32(math.Copysign(1, float64(adj)))
			}
			if m := aws.ToInt32(c.MinAdjustmentMagnitude); m > 0 && abs(d) < m {
				d = int32(math.Copysign(float64(m), float64(adj)))
			}
			return cur + d, true
		default:
			return cur + adj, true
		}
	}
	return cur, false
}

func abs(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// RunAlarmActions runs the scaling policies an alarm names (the metrics
// evaluator calls it on the leader, once per evaluation minute at while
// the alarm is in the state; SetAlarmState calls it too). Failures are
// logged: the next evaluation acts again.
func (s *Server) RunAlarmActions(_ context.Context, a *metrics.Alarm, actions []string, transition bool, at time.Time) {
	for _, arn := range actions {
		resource, name, ok := policyOfARN(arn)
		if !ok {
			continue
		}
		changed, err := s.runPolicy(resource, name, a, transition, at)
		if err != nil {
			s.o.Logger.Warn("scaling policy failed", "policy", arn, "alarm", a.Name(), "err", err)
			continue
		}
		if changed && s.o.Services != nil {
			s.o.Services.Wake()
		}
	}
}

// runPolicy acts on one policy for one evaluation of an alarm in one
// transaction: the decision, the service's desired count, the cooldown
// stamps, the evaluation marked handled and the activity commit together,
// so a restart neither repeats nor loses it.
func (s *Server) runPolicy(resource, name string, a *metrics.Alarm, transition bool, at time.Time) (bool, error) {
	value, hasValue, err := s.o.Metrics.AlarmValue(&a.Alarm, at)
	if err != nil {
		return false, err
	}
	now := s.o.Now()
	changed := false
	err = s.o.Store.Update(func(tx store.Tx) error {
		changed = false
		t, ok, err := getTarget(tx, resource)
		if err != nil || !ok {
			return err
		}
		var p Policy
		if err := tx.Get(PoliciesBucket, childKey(resource, name), &p); err != nil {
			return nil // deleted since the alarm fired
		}
		handled := name + "/" + a.Name()
		if t.Handled[handled] >= at.Unix() {
			return nil // this evaluation was acted on (before a restart)
		}
		if t.Handled == nil {
			t.Handled = map[string]int64{}
		}
		t.Handled[handled] = at.Unix()
		write := func() error { return tx.Put(TargetsBucket, resource, t) }
		svc, ok, err := loadService(tx, resource)
		if err != nil {
			return err
		}
		if !ok || aws.ToString(svc.Service.Status) != "ACTIVE" {
			return write()
		}
		cur := svc.Service.DesiredCount
		next, cooldownOut, cooldownIn, scaleInOK := cur, int64(defaultCooldown), int64(defaultCooldown), true
		switch p.Policy.PolicyType {
		case types.PolicyTypeTargetTrackingScaling:
			c := p.Policy.TargetTrackingScalingPolicyConfiguration
			if c.ScaleOutCooldown != nil {
				cooldownOut = int64(*c.ScaleOutCooldown)
			}
			if c.ScaleInCooldown != nil {
				cooldownIn = int64(*c.ScaleInCooldown)
			}
			scaleInOK = !aws.ToBool(c.DisableScaleIn)
			if !hasValue || a.Alarm.StateValue != cwtypes.StateValueAlarm {
				return write() // no data: hold
			}
			high := a.Alarm.ComparisonOperator == cwtypes.ComparisonOperatorGreaterThanThreshold
			next = trackingCapacity(cur, value, aws.ToFloat64(c.TargetValue), high)
		case types.PolicyTypeStepScaling:
			c := p.Policy.StepScalingPolicyConfiguration
			if c.Cooldown != nil {
				cooldownOut, cooldownIn = int64(*c.Cooldown), int64(*c.Cooldown)
			}
			if !hasValue {
				return write()
			}
			n, ok := stepCapacity(cur, c, value, aws.ToFloat64(a.Alarm.Threshold))
			if !ok {
				return write()
			}
			next = n
		}
		lo, hi := aws.ToInt32(t.Target.MinCapacity), aws.ToInt32(t.Target.MaxCapacity)
		bounded := min(max(next, lo), hi)
		ss := t.Target.SuspendedState
		switch {
		case bounded > cur:
			if ss != nil && aws.ToBool(ss.DynamicScalingOutSuspended) || now.Unix()-t.LastScaleOut[name] < cooldownOut {
				return write()
			}
		case bounded < cur:
			if !scaleInOK || ss != nil && aws.ToBool(ss.DynamicScalingInSuspended) ||
				now.Unix()-t.LastScaleIn[name] < cooldownIn || now.Unix()-t.LastScaleOut[name] < cooldownOut {
				return write()
			}
		default:
			if transition && next != cur {
				// Asked to move past the range: AWS records that it did not.
				code, reason := "AlreadyAtMaxCapacity", "the maximum capacity"
				if next < cur {
					code, reason = "AlreadyAtMinCapacity", "the minimum capacity"
				}
				act := activity(resource, fmt.Sprintf("Setting desired count to %d.", next), s.cause(a, name),
					fmt.Sprintf("Failed to set desired count to %d: the service is at %s (%d).", next, reason, cur), now)
				act.StatusCode = types.ScalingActivityStatusCodeFailed
				act.NotScaledReasons = []types.NotScaledReason{{Code: aws.String(code), CurrentCapacity: aws.Int32(cur),
					MinCapacity: aws.Int32(lo), MaxCapacity: aws.Int32(hi)}}
				if err := addActivity(tx, act); err != nil {
					return err
				}
			}
			return write()
		}
		if err := setDesired(tx, svc, bounded); err != nil {
			return err
		}
		stamp := &t.LastScaleOut
		if bounded < cur {
			stamp = &t.LastScaleIn
		}
		if *stamp == nil {
			*stamp = map[string]int64{}
		}
		(*stamp)[name] = now.Unix()
		if err := addActivity(tx, activity(resource, fmt.Sprintf("Setting desired count to %d.", bounded), s.cause(a, name),
			fmt.Sprintf("Successfully set desired count to %d. Change successfully fulfilled by ecs.", bounded), now)); err != nil {
			return err
		}
		changed = true
		return write()
	})
	return changed, err
}

// cause is AWS's activity cause for an alarm-driven change.
func (s *Server) cause(a *metrics.Alarm, policy string) string {
	return fmt.Sprintf("monitor alarm %s in state %s triggered policy %s", a.Name(), a.Alarm.StateValue, policy)
}
