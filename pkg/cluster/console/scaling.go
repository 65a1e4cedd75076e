package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scalingActivitiesShown is how many of a service's latest scaling
// activities its page shows.
const scalingActivitiesShown = 10

// The Application Auto Scaling answers the service page reads, as JSON
// 1.1 encodes them (timestamps are epoch seconds).
type (
	scalableTarget struct {
		MinCapacity, MaxCapacity int
		SuspendedState           *struct {
			DynamicScalingInSuspended, DynamicScalingOutSuspended, ScheduledScalingSuspended bool
		}
	}
	metricSpec struct {
		PredefinedMetricSpecification *struct{ PredefinedMetricType, ResourceLabel string }
		CustomizedMetricSpecification *struct{ Namespace, MetricName, Statistic string }
	}
	scalingPolicy struct {
		PolicyName, PolicyType                   string
		TargetTrackingScalingPolicyConfiguration *struct {
			metricSpec
			TargetValue                       float64
			ScaleInCooldown, ScaleOutCooldown *int
			DisableScaleIn                    bool
		}
		StepScalingPolicyConfiguration *struct {
			AdjustmentType, MetricAggregationType string
			Cooldown                              *int
			StepAdjustments                       []struct {
				MetricIntervalLowerBound, MetricIntervalUpperBound *float64
				ScalingAdjustment                                  int
			}
		}
		Alarms []struct{ AlarmName string }
	}
	scheduledAction struct {
		ScheduledActionName, Schedule, Timezone string
		ScalableTargetAction                    *struct{ MinCapacity, MaxCapacity *int }
	}
	scalingActivity struct {
		Description, Cause, StatusCode, StatusMessage string
		StartTime, EndTime                            *float64
	}
)

// policyRow is a scaling policy as the page says it.
type policyRow struct {
	Name, Type, Rule string
	Alarms           []string
}

type scheduledRow struct{ Name, Schedule, Capacity string }

type activityRow struct {
	Start                                  *time.Time
	Description, Cause, Status, StatusText string
}

// scalingData is a service's Application Auto Scaling: nil Target when
// the service is not a scalable target.
type scalingData struct {
	Target     *scalableTarget
	Policies   []policyRow
	Scheduled  []scheduledRow
	Activities []activityRow
	// Error is Application Auto Scaling's refusal.
	Error string
}

// loadScaling reads the service's scalable target, policies, scheduled
// actions and latest activities through Application Auto Scaling's
// handler with the session's key, as `aws application-autoscaling
// describe-*` would.
func (s *Server) loadScaling(r *http.Request, cluster, service string) (*scalingData, error) {
	d := &scalingData{}
	resource := "service/" + cluster + "/" + service
	in := map[string]any{"ServiceNamespace": "ecs", "ResourceId": resource, "ScalableDimension": "ecs:service:DesiredCount"}
	describe := func(op string, in map[string]any, out any) (bool, error) {
		res, err := s.callOut(r, s.o.Scaling, op, in)
		if err != nil {
			return false, err
		}
		if res.flash != nil {
			d.Error = res.flash.Message
			return false, nil
		}
		if err := json.Unmarshal(res.body, out); err != nil {
			return false, fmt.Errorf("%s: decode: %w", op, err)
		}
		return true, nil
	}
	var targets struct{ ScalableTargets []scalableTarget }
	if ok, err := describe("DescribeScalableTargets", map[string]any{"ServiceNamespace": "ecs", "ResourceIds": []string{resource},
		"ScalableDimension": "ecs:service:DesiredCount"}, &targets); !ok || len(targets.ScalableTargets) == 0 {
		return d, err
	}
	d.Target = &targets.ScalableTargets[0]
	var policies struct{ ScalingPolicies []scalingPolicy }
	if ok, err := describe("DescribeScalingPolicies", in, &policies); !ok {
		return d, err
	}
	for _, p := range policies.ScalingPolicies {
		row := policyRow{Name: p.PolicyName, Type: p.PolicyType, Rule: policyRule(&p)}
		for _, a := range p.Alarms {
			row.Alarms = append(row.Alarms, a.AlarmName)
		}
		d.Policies = append(d.Policies, row)
	}
	var scheduled struct{ ScheduledActions []scheduledAction }
	if ok, err := describe("DescribeScheduledActions", in, &scheduled); !ok {
		return d, err
	}
	for _, a := range scheduled.ScheduledActions {
		row := scheduledRow{Name: a.ScheduledActionName, Schedule: a.Schedule}
		if a.Timezone != "" {
			row.Schedule += " (" + a.Timezone + ")"
		}
		if c := a.ScalableTargetAction; c != nil {
			row.Capacity = "min " + optInt(c.MinCapacity) + ", max " + optInt(c.MaxCapacity)
		}
		d.Scheduled = append(d.Scheduled, row)
	}
	activitiesIn := map[string]any{"ServiceNamespace": "ecs", "ResourceId": resource, "ScalableDimension": "ecs:service:DesiredCount",
		"MaxResults": scalingActivitiesShown}
	var activities struct{ ScalingActivities []scalingActivity }
	if ok, err := describe("DescribeScalingActivities", activitiesIn, &activities); !ok {
		return d, err
	}
	for _, a := range activities.ScalingActivities {
		row := activityRow{Description: a.Description, Cause: a.Cause, Status: a.StatusCode, StatusText: a.StatusMessage}
		if a.StartTime != nil {
			t := time.UnixMilli(int64(*a.StartTime * 1000))
			row.Start = &t
		}
		d.Activities = append(d.Activities, row)
	}
	return d, nil
}

func optInt(n *int) string {
	if n == nil {
		return "unchanged"
	}
	return strconv.Itoa(*n)
}

func seconds(n *int) string {
	if n == nil {
		return "default"
	}
	return strconv.Itoa(*n) + " s"
}

// policyRule says what a scaling policy does.
func policyRule(p *scalingPolicy) string {
	if c := p.TargetTrackingScalingPolicyConfiguration; c != nil {
		metric := "a metric"
		switch {
		case c.PredefinedMetricSpecification != nil:
			metric = c.PredefinedMetricSpecification.PredefinedMetricType
		case c.CustomizedMetricSpecification != nil:
			m := c.CustomizedMetricSpecification
			metric = m.Namespace + " " + m.MetricName + " (" + m.Statistic + ")"
		}
		t := fmt.Sprintf("keep %s at %g; cooldowns: scale-out %s, scale-in %s", metric, c.TargetValue, seconds(c.ScaleOutCooldown),
			seconds(c.ScaleInCooldown))
		if c.DisableScaleIn {
			t += "; never scales in"
		}
		return t
	}
	if c := p.StepScalingPolicyConfiguration; c != nil {
		var steps []string
		for _, st := range c.StepAdjustments {
			lo, hi := "-∞", "+∞"
			if st.MetricIntervalLowerBound != nil {
				lo = strconv.FormatFloat(*st.MetricIntervalLowerBound, 'g', -1, 64)
			}
			if st.MetricIntervalUpperBound != nil {
				hi = strconv.FormatFloat(*st.MetricIntervalUpperBound, 'g', -1, 64)
			}
			steps = append(steps, fmt.Sprintf("[%s, %s): %+d", lo, hi, st.ScalingAdjustment))
		}
		return fmt.Sprintf("%s by alarm breach %s; cooldown %s", c.AdjustmentType, strings.Join(steps, ", "), seconds(c.Cooldown))
	}
	return ""
}
