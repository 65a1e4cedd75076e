package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

const cluster = "arn:aws:ecs:us-east-1:000000000000:cluster/lab"

// fixtureTask decodes the first task of a shared protocol fixture.
func fixtureTask(t *testing.T, name string) *api.Task {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "api", "testdata", "fixtures", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	f, err := api.DecodeFrame(b)
	if err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
	p, ok := f.(*api.PayloadMessage)
	if !ok || len(p.Tasks) == 0 {
		t.Fatalf("fixture %s is %T, want a PayloadMessage with tasks", name, f)
	}
	return p.Tasks[0]
}

// webTask is the berth web fixture with its health checks made fast.
func webTask(t *testing.T) engine.TaskDef {
	def := engine.FromAPI(fixtureTask(t, "PayloadMessage-berth-web-task.json"), cluster)
	if def.Invalid != "" {
		t.Fatalf("web fixture is invalid: %s", def.Invalid)
	}
	for i := range def.Containers {
		if hc := def.Containers[i].HealthCheck; hc != nil {
			hc.Interval, hc.StartPeriod = 10*time.Millisecond, 0
		}
	}
	return def
}

func simpleTask(arn string, containers ...engine.ContainerDef) engine.TaskDef {
	return engine.TaskDef{ARN: arn, Family: "f", Version: "1", Cluster: cluster, NetworkMode: "bridge", Containers: containers}
}

func TestWebTaskStartsAfterHealthyAndStopsInReverseOrder(t *testing.T) {
	h := newHarness(t, nil)
	def := webTask(t)
	h.apply(def, engine.TaskRunning)
	st := h.waitStatus(def.ARN, engine.TaskRunning)

	ev := h.rt.eventLog()
	appID, shipperID := engine.ContainerID(def.ARN, "app"), engine.ContainerID(def.ARN, "shipper")
	keys := h.store.changeKeys()
	healthy := slices.Index(keys, "app/RUNNING+HEALTHY")
	shipperUp := slices.Index(keys, "shipper/RUNNING")
	if healthy < 0 || shipperUp < healthy {
		t.Fatalf("outbox %v: want app HEALTHY before shipper RUNNING", keys)
	}
	if slices.Index(ev, "create "+shipperID) < slices.Index(ev, "start "+appID) {
		t.Fatalf("runtime calls %v: shipper created before app started", ev)
	}
	app := findContainer(st, "app")
	if len(app.Bindings) != 2 || app.Bindings[0].HostPort != 49153 || app.Bindings[1].HostPort != 9090 {
		t.Fatalf("app bindings = %+v, want dynamic 49153 for 8080 and 9090 static", app.Bindings)
	}
	if !slices.Contains(keys, "task/RUNNING") {
		t.Fatalf("outbox %v has no task RUNNING", keys)
	}

	h.apply(def, engine.TaskStopped)
	st = h.waitStatus(def.ARN, engine.TaskStopped)
	ev = h.rt.eventLog()
	if a, s := slices.Index(ev, "stop "+appID), slices.Index(ev, "stop "+shipperID); s < 0 || a < s {
		t.Fatalf("runtime calls %v: want shipper stopped before app", ev)
	}
	for _, c := range st.Containers {
		if c.KnownStatus != engine.ContainerStopped || c.ExitCode == nil || *c.ExitCode != 143 {
			t.Fatalf("container %s: %s exit %v, want STOPPED with exit 143", c.Name, c.KnownStatus, c.ExitCode)
		}
	}
	if st.StoppedReason != engine.ReasonStoppedByUser {
		t.Fatalf("stopped reason %q, want %q", st.StoppedReason, engine.ReasonStoppedByUser)
	}
	if h.nw.live() != 0 {
		t.Fatalf("network not torn down")
	}
}

func findContainer(st engine.TaskState, name string) engine.ContainerState {
	for _, c := range st.Containers {
		if c.Name == name {
			return *c
		}
	}
	return engine.ContainerState{}
}

func TestRedeliveryChangesNothingAndDesiredOnlyMovesForward(t *testing.T) {
	h := newHarness(t, nil)
	def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/redeliver", engine.ContainerDef{Name: "c", Image: "img", Essential: true})
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)
	before := len(h.store.changes())
	h.apply(def, engine.TaskRunning)
	time.Sleep(50 * time.Millisecond)
	if got := h.rt.count("create "); got != 1 {
		t.Fatalf("redelivery created %d containers, want 1", got)
	}
	if after := len(h.store.changes()); after != before {
		t.Fatalf("redelivery added %d state changes", after-before)
	}
	h.apply(def, engine.TaskStopped)
	h.waitStatus(def.ARN, engine.TaskStopped)
	h.apply(def, engine.TaskRunning)
	time.Sleep(50 * time.Millisecond)
	st, _ := h.eng.Task(def.ARN)
	if st.DesiredStatus != engine.TaskStopped || h.rt.count("start ") != 1 {
		t.Fatalf("desired %s after RUNNING redelivery of a stopped task, starts %d; want STOPPED, 1", st.DesiredStatus, h.rt.count("start "))
	}
}

func TestFailures(t *testing.T) {
	unsupported := fixtureTask(t, "PayloadMessage-berth-web-task.json")
	unsupported.Arn = "arn:aws:ecs:us-east-1:0:task/lab/unsupported"
	unsupported.Containers[1].DockerConfig.HostConfig = `{"PidsLimit": 10}`
	tests := []struct {
		name       string
		def        engine.TaskDef
		exit       string // container to make exit with code 3 once running
		wantReason string
	}{
		{
			name:       "essential container exits",
			def:        simpleTask("arn:aws:ecs:us-east-1:0:task/lab/essential", engine.ContainerDef{Name: "main", Image: "img", Essential: true}, engine.ContainerDef{Name: "side", Image: "img"}),
			exit:       "main",
			wantReason: engine.ReasonEssentialExited,
		},
		{
			name:       "image does not exist",
			def:        simpleTask("arn:aws:ecs:us-east-1:0:task/lab/pull", engine.ContainerDef{Name: "main", Image: "nonexistent", Essential: true}),
			wantReason: "CannotPullContainerError: ",
		},
		{
			name:       "unsupported hostConfig field",
			def:        engine.FromAPI(unsupported, cluster),
			wantReason: `PidsLimit`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.apply(tc.def, engine.TaskRunning)
			if tc.exit != "" {
				h.waitStatus(tc.def.ARN, engine.TaskRunning)
				h.rt.exit(engine.ContainerID(tc.def.ARN, tc.exit), 3)
			}
			st := h.waitStatus(tc.def.ARN, engine.TaskStopped)
			if !strings.Contains(st.StoppedReason, tc.wantReason) {
				t.Fatalf("stopped reason %q, want it to contain %q", st.StoppedReason, tc.wantReason)
			}
			for _, c := range st.Containers {
				if c.KnownStatus != engine.ContainerStopped {
					t.Fatalf("container %s is %s after the task stopped", c.Name, c.KnownStatus)
				}
			}
			if h.rt.count("start ") != h.rt.count("stop ")+boolInt(tc.exit != "") {
				t.Fatalf("runtime calls %v: a started container was not stopped", h.rt.eventLog())
			}
			// The engine keeps serving other tasks.
			ok := simpleTask(tc.def.ARN+"-next", engine.ContainerDef{Name: "c", Image: "img", Essential: true})
			h.apply(ok, engine.TaskRunning)
			h.waitStatus(ok.ARN, engine.TaskRunning)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestTaskWaitsForHostResources(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.MemoryMiB = 100 })
	a := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/a", engine.ContainerDef{Name: "c", Image: "img", Essential: true, MemoryMiB: 60})
	b := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/b", engine.ContainerDef{Name: "c", Image: "img", Essential: true, MemoryMiB: 60})
	h.apply(a, engine.TaskRunning)
	h.waitStatus(a.ARN, engine.TaskRunning)
	h.apply(b, engine.TaskRunning)
	time.Sleep(50 * time.Millisecond)
	if st, _ := h.eng.Task(b.ARN); st.KnownStatus != engine.TaskNone || st.Containers[0].KnownStatus != engine.ContainerNone {
		t.Fatalf("task b is %s (container %s) while the host lacks memory; want PENDING and nothing pulled", st.KnownStatus.Reported(), st.Containers[0].KnownStatus)
	}
	h.apply(a, engine.TaskStopped)
	h.waitStatus(b.ARN, engine.TaskRunning)

	big := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/big", engine.ContainerDef{Name: "c", Image: "img", Essential: true, MemoryMiB: 200})
	h.apply(big, engine.TaskRunning)
	st := h.waitStatus(big.ARN, engine.TaskStopped)
	if !strings.HasPrefix(st.StoppedReason, "ResourceInitializationError: ") {
		t.Fatalf("task larger than the host stopped with %q, want a ResourceInitializationError", st.StoppedReason)
	}
}

func TestDependencyFailures(t *testing.T) {
	h := newHarness(t, nil)
	h.rt.health = func(id string) int { return 1 }
	def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/deps",
		engine.ContainerDef{Name: "init", Image: "img"},
		engine.ContainerDef{Name: "db", Image: "img", StartTimeout: 200 * time.Millisecond,
			HealthCheck: &engine.HealthCheck{Test: []string{"CMD", "false"}, Interval: time.Hour}},
		engine.ContainerDef{Name: "app", Image: "img", Essential: true, DependsOn: []engine.Dependency{
			{Container: "init", Condition: engine.CondSuccess},
			{Container: "db", Condition: engine.CondHealthy},
		}},
	)
	h.apply(def, engine.TaskRunning)
	h.waitTask(def.ARN, "init and db running", func(st engine.TaskState) bool {
		return findContainer(st, "init").KnownStatus == engine.ContainerRunning && findContainer(st, "db").KnownStatus == engine.ContainerRunning
	})
	h.rt.exit(engine.ContainerID(def.ARN, "init"), 0)
	st := h.waitStatus(def.ARN, engine.TaskStopped)
	if !strings.Contains(st.StoppedReason, "did not reach HEALTHY") {
		t.Fatalf("stopped reason %q, want the HEALTHY dependency timeout", st.StoppedReason)
	}
	if h.rt.count("create "+engine.ContainerID(def.ARN, "app")) != 0 {
		t.Fatalf("app was created although its dependency never became healthy")
	}
}

func TestCleanupRemovesContainersAndVolumes(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.CleanupWait = 20 * time.Millisecond })
	def := webTask(t)
	def.Volumes[0].SourcePath = t.TempDir()
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)
	scratch := filepath.Join(h.opts.DataDir, "volumes", engine.TaskID(def.ARN), "scratch")
	if _, err := os.Stat(scratch); err != nil {
		t.Fatalf("task volume: %v", err)
	}
	h.apply(def, engine.TaskStopped)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := h.eng.Task(def.ARN); !ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := h.eng.Task(def.ARN); ok {
		t.Fatalf("task still known after clean-up wait")
	}
	if n := h.rt.count("remove "); n != 2 {
		t.Fatalf("removed %d containers, want 2", n)
	}
	if _, err := os.Stat(scratch); !os.IsNotExist(err) {
		t.Fatalf("task volume still there after clean-up: %v", err)
	}
	h.apply(def, engine.TaskRunning)
	if _, ok := h.eng.Task(def.ARN); ok || h.rt.count("create ") != 2 {
		t.Fatalf("redelivery after clean-up ran the task again")
	}
}

func TestRecoveryReattachesAndReportsDowntimeExits(t *testing.T) {
	h := newHarness(t, nil)
	keep := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/keep", engine.ContainerDef{Name: "c", Image: "img", Essential: true})
	dies := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/dies", engine.ContainerDef{Name: "c", Image: "img", Essential: true})
	h.apply(keep, engine.TaskRunning)
	h.apply(dies, engine.TaskRunning)
	pid := findContainer(h.waitStatus(keep.ARN, engine.TaskRunning), "c").PID
	h.waitStatus(dies.ARN, engine.TaskRunning)

	h.stop()
	h.rt.exit(engine.ContainerID(dies.ARN, "c"), 7) // while the agent is down
	starts := h.rt.count("start ")
	h.start()

	st := h.waitStatus(dies.ARN, engine.TaskStopped)
	if c := findContainer(st, "c"); c.ExitCode == nil || *c.ExitCode != 7 {
		t.Fatalf("downtime exit recorded as %v, want 7", c.ExitCode)
	}
	kst, _ := h.eng.Task(keep.ARN)
	if kst.KnownStatus != engine.TaskRunning || findContainer(kst, "c").PID != pid {
		t.Fatalf("kept task %s pid %d, want RUNNING pid %d", kst.KnownStatus, findContainer(kst, "c").PID, pid)
	}
	if h.rt.count("start ") != starts {
		t.Fatalf("recovery started containers again: %v", h.rt.eventLog())
	}
	// The re-attached container's exit is still seen.
	h.rt.exit(engine.ContainerID(keep.ARN, "c"), 0)
	h.waitStatus(keep.ARN, engine.TaskStopped)
}

func TestStaticPortHeldByAnotherTaskKeepsTaskPending(t *testing.T) {
	h := newHarness(t, nil)
	hostTask := func(id string) engine.TaskDef {
		def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/"+id, engine.ContainerDef{Name: "c", Image: "img", Essential: true,
			Ports: []container.PortMapping{{ContainerPort: 8080, Protocol: "tcp"}}})
		def.NetworkMode = "host"
		return def
	}
	a, b := hostTask("port-a"), hostTask("port-b")
	h.apply(a, engine.TaskRunning)
	h.waitStatus(a.ARN, engine.TaskRunning)
	h.apply(b, engine.TaskRunning)
	time.Sleep(50 * time.Millisecond)
	if st, _ := h.eng.Task(b.ARN); st.KnownStatus != engine.TaskNone {
		t.Fatalf("task b is %s while task a holds host port 8080; want PENDING", st.KnownStatus.Reported())
	}
	h.apply(a, engine.TaskStopped)
	st := h.waitStatus(b.ARN, engine.TaskRunning)
	if c := findContainer(st, "c"); len(c.Bindings) != 1 || c.Bindings[0].HostPort != 8080 {
		t.Fatalf("host-mode bindings %+v, want 8080", c.Bindings)
	}
}

func TestTaskWithOnlyNonEssentialContainersStopsWhenAllExited(t *testing.T) {
	h := newHarness(t, nil)
	def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/nonessential",
		engine.ContainerDef{Name: "a", Image: "img"}, engine.ContainerDef{Name: "b", Image: "img"})
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)
	h.rt.exit(engine.ContainerID(def.ARN, "a"), 0)
	time.Sleep(30 * time.Millisecond)
	if st, _ := h.eng.Task(def.ARN); st.KnownStatus != engine.TaskRunning {
		t.Fatalf("task %s after one non-essential container exited, want RUNNING", st.KnownStatus)
	}
	h.rt.exit(engine.ContainerID(def.ARN, "b"), 0)
	h.waitStatus(def.ARN, engine.TaskStopped)
}
