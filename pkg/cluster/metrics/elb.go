package metrics

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster/elbv2/lbwire"
)

// The AWS/ApplicationELB namespace and the metrics berth-lb's counters
// give.
const (
	ELBNamespace          = "AWS/ApplicationELB"
	RequestCount          = "RequestCount"
	RequestCountPerTarget = "RequestCountPerTarget"
	TargetResponseTime    = "TargetResponseTime"
	HealthyHostCount      = "HealthyHostCount"
	UnHealthyHostCount    = "UnHealthyHostCount"
	// HTTPCodeTarget is the name of the count of targets' responses of a
	// status class: HTTPCode_Target_2XX_Count.
	HTTPCodeTarget = "HTTPCode_Target_%dXX_Count"
	UnitCount      = "Count"
	UnitSeconds    = "Seconds"
)

// ELBDimension is the value of a LoadBalancer or TargetGroup dimension:
// the ARN's resource after "loadbalancer/" ("app/web/0123456789abcdef")
// or after the colon ("targetgroup/web-tg/0123456789abcdef"), as AWS
// names them.
func ELBDimension(arn string) string {
	if _, after, ok := strings.Cut(arn, ":loadbalancer/"); ok {
		return after
	}
	if i := strings.LastIndex(arn, ":"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// RecordLoadBalancer turns one data-plane report (deltas since its
// previous one) into AWS/ApplicationELB samples at the endpoint's clock,
// with AWS's dimensions: RequestCount per {LoadBalancer} and per
// {LoadBalancer, TargetGroup}; RequestCountPerTarget (the group's
// requests over its healthy targets, over its targets when none is
// healthy) per {TargetGroup} and {LoadBalancer, TargetGroup};
// HTTPCode_Target_2XX..5XX_Count, TargetResponseTime (only with
// requests), HealthyHostCount and UnHealthyHostCount per {LoadBalancer,
// TargetGroup}. Counts are reported even when zero, so that a load that
// stops reads as zero, not as missing data (a data plane that stops
// reporting leaves the data missing). The caller checked that the load
// balancer and the target groups exist.
func (s *Store) RecordLoadBalancer(in *lbwire.MetricsInput) error {
	now := s.o.Now()
	lbDim := Dimension{"LoadBalancer", ELBDimension(in.LoadBalancerArn)}
	var samples []Sample
	add := func(name, unit string, st StatSet, dims ...Dimension) {
		samples = append(samples, Sample{MetricID: MetricID{Namespace: ELBNamespace, MetricName: name, Dimensions: dims},
			Unit: unit, Time: now, Stat: st})
	}
	add(RequestCount, UnitCount, Value(float64(in.RequestCount)), lbDim)
	for _, tg := range in.TargetGroups {
		tgDim := Dimension{"TargetGroup", ELBDimension(tg.TargetGroupArn)}
		add(RequestCount, UnitCount, Value(float64(tg.RequestCount)), lbDim, tgDim)
		for i, n := range []int64{tg.Target2XX, tg.Target3XX, tg.Target4XX, tg.Target5XX} {
			add(fmt.Sprintf(HTTPCodeTarget, i+2), UnitCount, Value(float64(n)), lbDim, tgDim)
		}
		if hosts := tg.HealthyHostCount; hosts > 0 || tg.UnHealthyHostCount > 0 {
			if hosts == 0 {
				hosts = tg.UnHealthyHostCount
			}
			per := Value(float64(tg.RequestCount) / float64(hosts))
			add(RequestCountPerTarget, UnitCount, per, tgDim)
			add(RequestCountPerTarget, UnitCount, per, lbDim, tgDim)
		}
		if tg.RequestCount > 0 {
			add(TargetResponseTime, UnitSeconds, StatSet{Count: float64(tg.RequestCount), Sum: tg.ResponseTimeSum,
				Min: tg.ResponseTimeMin, Max: tg.ResponseTimeMax}, lbDim, tgDim)
		}
		add(HealthyHostCount, UnitCount, Value(float64(tg.HealthyHostCount)), lbDim, tgDim)
		add(UnHealthyHostCount, UnitCount, Value(float64(tg.UnHealthyHostCount)), lbDim, tgDim)
	}
	if err := s.Put(samples); err != nil {
		return fmt.Errorf("record load balancer metrics: %w", err)
	}
	return nil
}
