package servicectl

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/berth-dev/berth/pkg/cluster/records"
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
	grace := Timing{}.withDefaults().HealthyAfter
	if grace != 40*time.Second {
		t.Fatalf("default grace %v, want 40s", grace)
	}
	task := func(started time.Duration, health ...types.HealthStatus) *records.Task {
		tr := &records.Task{}
		tr.Task.StartedAt = aws.Time(now.Add(-started))
		for _, h := range health {
			tr.Task.Containers = append(tr.Task.Containers, types.Container{HealthStatus: h})
		}
		return tr
	}
	cases := []struct {
		name               string
		t                  *records.Task
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
