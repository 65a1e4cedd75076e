package engine_test

import (
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/container"
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
	h.waitTask(def.ARN, "UNHEALTHY", func(st engine.TaskState) bool { return findContainer(st, "c").Health == container.HealthUnhealthy })
	failing.Store(false)
	h.waitTask(def.ARN, "HEALTHY", func(st engine.TaskState) bool { return findContainer(st, "c").Health == container.HealthHealthy })
	keys := h.store.changeKeys()
	if u, ok := slices.Index(keys, "c/RUNNING+UNHEALTHY"), slices.Index(keys, "c/RUNNING+HEALTHY"); u < 0 || ok < u {
		t.Fatalf("outbox %v: want UNHEALTHY then HEALTHY reported", keys)
	}
	if st, _ := h.eng.Task(def.ARN); st.KnownStatus != engine.TaskRunning {
		t.Fatalf("an unhealthy container stopped its task: %s", st.KnownStatus)
	}
}

// TestTaskHealthListsCheckedContainersOfRunningTasks: TaskHealth reports,
// sorted by task ARN, the running tasks that have a container with a
// health check, and only those containers, with their current status.
func TestTaskHealthListsCheckedContainersOfRunningTasks(t *testing.T) {
	h := newHarness(t, nil)
	h.rt.health = func(string) int { return 0 }
	check := &engine.HealthCheck{Test: []string{"CMD-SHELL", "check"}, Interval: 5 * time.Millisecond, Retries: 3}
	checked := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/b-checked",
		engine.ContainerDef{Name: "plain", Image: "img", Essential: true},
		engine.ContainerDef{Name: "c", Image: "img", Essential: true, HealthCheck: check})
	checked2 := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/a-checked", engine.ContainerDef{Name: "d", Image: "img", Essential: true, HealthCheck: check})
	unchecked := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/unchecked", engine.ContainerDef{Name: "e", Image: "img", Essential: true})
	for _, def := range []engine.TaskDef{checked, checked2, unchecked} {
		h.apply(def, engine.TaskRunning)
		h.waitStatus(def.ARN, engine.TaskRunning)
	}
	h.waitTask(checked.ARN, "HEALTHY", func(st engine.TaskState) bool { return findContainer(st, "c").Health == container.HealthHealthy })
	h.waitTask(checked2.ARN, "HEALTHY", func(st engine.TaskState) bool { return findContainer(st, "d").Health == container.HealthHealthy })
	got := h.eng.TaskHealth()
	want := []container.TaskHealth{
		{TaskARN: checked2.ARN, Cluster: checked2.Cluster, Family: "f", Version: "1", Containers: []container.ContainerHealth{{Name: "d", Status: container.HealthHealthy}}},
		{TaskARN: checked.ARN, Cluster: checked.Cluster, Family: "f", Version: "1", Containers: []container.ContainerHealth{{Name: "c", Status: container.HealthHealthy}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TaskHealth\n got %+v\nwant %+v", got, want)
	}
}
