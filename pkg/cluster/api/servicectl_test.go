package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func TestBreakerThreshold(t *testing.T) {
	for desired, want := range map[int32]int32{0: 3, 1: 3, 6: 3, 7: 4, 10: 5, 399: 200, 1000: 200} {
		if got := breakerThreshold(desired); got != want {
			t.Errorf("threshold for desired %d = %d, want %d", desired, got, want)
		}
	}
}

func TestTaskHealth(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	grace := ServiceOptions{}.withDefaults().HealthyAfter
	if grace != 40*time.Second {
		t.Fatalf("default grace %v, want 40s", grace)
	}
	task := func(started time.Duration, health ...types.HealthStatus) *taskRecord {
		tr := &taskRecord{}
		tr.Task.StartedAt = aws.Time(now.Add(-started))
		for _, h := range health {
			tr.Task.Containers = append(tr.Task.Containers, types.Container{HealthStatus: h})
		}
		return tr
	}
	cases := []struct {
		name               string
		t                  *taskRecord
		healthy, unhealthy bool
	}{
		{"no health check, 39 s", task(39 * time.Second), false, false},
		{"no health check, 40 s", task(40 * time.Second), true, false},
		{"all HEALTHY at once", task(time.Second, types.HealthStatusHealthy, types.HealthStatusHealthy), true, false},
		{"one UNHEALTHY", task(time.Minute, types.HealthStatusHealthy, types.HealthStatusUnhealthy), false, true},
		{"unreported health, 10 s", task(10*time.Second, types.HealthStatusUnknown), false, false},
		{"unreported health, 41 s", task(41*time.Second, types.HealthStatusUnknown), true, false},
	}
	for _, c := range cases {
		h, u := taskHealth(c.t, now, grace)
		if h != c.healthy || u != c.unhealthy {
			t.Errorf("%s: healthy %v unhealthy %v, want %v %v", c.name, h, u, c.healthy, c.unhealthy)
		}
	}
}

func TestDeploymentConfigDefaultsAndLimits(t *testing.T) {
	dc, err := deploymentConfig(types.SchedulingStrategyReplica, nil, nil)
	if err != nil || aws.ToInt32(dc.MinimumHealthyPercent) != 100 || aws.ToInt32(dc.MaximumPercent) != 200 {
		t.Fatalf("REPLICA defaults %+v %v, want 100/200", dc, err)
	}
	dc, err = deploymentConfig(types.SchedulingStrategyDaemon, nil, nil)
	if err != nil || aws.ToInt32(dc.MinimumHealthyPercent) != 0 || aws.ToInt32(dc.MaximumPercent) != 100 {
		t.Fatalf("DAEMON defaults %+v %v, want 0/100", dc, err)
	}
	for _, bad := range []types.DeploymentConfiguration{
		{MinimumHealthyPercent: aws.Int32(-1)},
		{MinimumHealthyPercent: aws.Int32(101)},
		{MaximumPercent: aws.Int32(99)},
		{MaximumPercent: aws.Int32(201)},
	} {
		if _, err := deploymentConfig(types.SchedulingStrategyReplica, &bad, nil); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestServiceEventsNewestFirstAtMost100(t *testing.T) {
	rec := &serviceRecord{}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 150; i++ {
		rec.addEvent(fmt.Sprintf("event %d", i), start.Add(time.Duration(i)*time.Second))
	}
	evs := rec.Service.Events
	if len(evs) != maxServiceEvents || aws.ToString(evs[0].Message) != "event 149" || aws.ToString(evs[99].Message) != "event 50" {
		t.Fatalf("%d events, first %q, last %q; want 100, event 149 .. event 50", len(evs), aws.ToString(evs[0].Message), aws.ToString(evs[len(evs)-1].Message))
	}
}
