package engine_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/engine"
)

func TestHealthTurnsUnhealthyAfterRetriesAndBack(t *testing.T) {
	h := newHarness(t, nil)
	var failing atomic.Bool
	failing.Store(true)
	h.rt.health = func(string) int {
		if failing.Load() {
			return 1
		}
		return 0
	}
	def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/health", engine.ContainerDef{Name: "c", Image: "img", Essential: true,
		HealthCheck: &engine.HealthCheck{Test: []string{"CMD-SHELL", "check"}, Interval: 5 * time.Millisecond, Retries: 3}})
	h.apply(def, engine.TaskRunning)
	h.waitTask(def.ARN, "UNHEALTHY", func(st engine.TaskState) bool { return findContainer(st, "c").Health == engine.HealthUnhealthy })
	failing.Store(false)
	h.waitTask(def.ARN, "HEALTHY", func(st engine.TaskState) bool { return findContainer(st, "c").Health == engine.HealthHealthy })
	keys := h.store.changeKeys()
	if u, ok := slices.Index(keys, "c/RUNNING+UNHEALTHY"), slices.Index(keys, "c/RUNNING+HEALTHY"); u < 0 || ok < u {
		t.Fatalf("outbox %v: want UNHEALTHY then HEALTHY reported", keys)
	}
	if st, _ := h.eng.Task(def.ARN); st.KnownStatus != engine.TaskRunning {
		t.Fatalf("an unhealthy container stopped its task: %s", st.KnownStatus)
	}
}
