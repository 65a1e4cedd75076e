package registration_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/registration"
)

type staticHealth []container.TaskHealth

func (h staticHealth) TaskHealth() []container.TaskHealth { return h }

// TestTelemetryPublishesAndReconnects: the TCS session publishes health to
// the real endpoint, publishes again after the endpoint restarts, and Run
// returns promptly when its context ends.
func TestTelemetryPublishesAndReconnects(t *testing.T) {
	l := newLab(t, acs.Options{})
	id := l.register(t, openState(t))
	health := staticHealth{{TaskARN: id.ClusterArn + "-not-a-task", Containers: []container.ContainerHealth{{Name: "web", Status: container.HealthHealthy}}}}
	tel, err := registration.NewTelemetry(registration.TelemetryOptions{
		API: l.agentECS.ECS, Credentials: l.agentECS.Credentials, Region: testRegion,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn, Health: health,
		Poll: 20 * time.Millisecond, Republish: 100 * time.Millisecond,
		Backoff: registration.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:  testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tel.Run(ctx) }()
	defer cancel()
	eventually(t, "a health report", 10*time.Second, func() bool { return tel.Published() >= 2 })

	addr := l.ep.Addr
	l.ep.Close()
	time.Sleep(300 * time.Millisecond) // the session notices the endpoint is gone
	before := tel.Published()
	ep2, err := devmodeRestart(l, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep2.Close() })
	eventually(t, "reports after the endpoint came back", 10*time.Second, func() bool { return tel.Published() >= before+2 })

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
