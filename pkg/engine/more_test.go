package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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

func TestSharedVolumes(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.CleanupWait = 10 * time.Millisecond })
	missing := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/shared-missing", engine.ContainerDef{Name: "c", Image: "img", Essential: true,
		Mounts: []engine.MountPoint{{Volume: "data", ContainerPath: "/data"}}})
	missing.Volumes = []engine.Volume{{Name: "data", Kind: engine.VolumeSharedScoped}}
	h.apply(missing, engine.TaskRunning)
	st := h.waitStatus(missing.ARN, engine.TaskStopped)
	if !strings.HasPrefix(st.StoppedReason, "ResourceInitializationError: shared volume data") {
		t.Fatalf("missing shared volume without autoprovision stopped with %q", st.StoppedReason)
	}

	auto := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/shared-auto", engine.ContainerDef{Name: "c", Image: "img", Essential: true,
		Mounts: []engine.MountPoint{{Volume: "data", ContainerPath: "/data"}}})
	auto.Volumes = []engine.Volume{{Name: "data", Kind: engine.VolumeSharedScoped, Autoprovision: true}}
	h.apply(auto, engine.TaskRunning)
	h.waitStatus(auto.ARN, engine.TaskRunning)
	dir := filepath.Join(h.opts.DataDir, "volumes", "shared", "data")
	h.rt.mu.Lock()
	spec := h.rt.containers[engine.ContainerID(auto.ARN, "c")].spec
	h.rt.mu.Unlock()
	if len(spec.Mounts) != 1 || spec.Mounts[0].Source != dir || spec.Mounts[0].Destination != "/data" {
		t.Fatalf("mounts %+v, want %s at /data", spec.Mounts, dir)
	}
	h.apply(auto, engine.TaskStopped)
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := h.eng.Task(auto.ARN); ok && time.Now().Before(deadline); _, ok = h.eng.Task(auto.ARN) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("shared volume removed at task clean-up: %v", err)
	}
}

func TestSpecCarriesLabelsAndSettings(t *testing.T) {
	h := newHarness(t, nil)
	def := webTask(t)
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)
	h.rt.mu.Lock()
	spec := h.rt.containers[engine.ContainerID(def.ARN, "app")].spec
	h.rt.mu.Unlock()
	want := map[string]string{
		engine.LabelTaskARN:        def.ARN,
		engine.LabelContainerName:  "app",
		engine.LabelTaskDefFamily:  "web",
		engine.LabelTaskDefVersion: "4",
		engine.LabelCluster:        "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
	}
	for k, v := range want {
		if spec.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, spec.Labels[k], v)
		}
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"entrypoint", slices.Equal(spec.Entrypoint, []string{"/bin/httpd"})},
		{"command", slices.Equal(spec.Command, []string{"-f", "-p", "8080", "-h", "/www"})},
		{"env", slices.Equal(spec.Env, []string{"APP_MODE=production", "GREETING=hello world"})},
		{"user/workdir/hostname", spec.User == "0" && spec.WorkingDir == "/www" && spec.Hostname == "web"},
		{"limits", spec.CPUShares == 256 && spec.MemoryLimit == 128<<20 && spec.MemoryReservation == 32<<20 && spec.ShmSize == 64<<20},
		{"ulimits", len(spec.Ulimits) == 1 && spec.Ulimits[0] == engine.Ulimit{Name: "nofile", Soft: 4096, Hard: 8192}},
		{"caps", slices.Equal(spec.CapAdd, []string{"NET_BIND_SERVICE"}) && slices.Equal(spec.CapDrop, []string{"MKNOD"})},
		{"dns/hosts", slices.Equal(spec.DNS, []string{"10.0.0.2"}) && slices.Equal(spec.ExtraHosts, []string{"db.internal:10.0.0.9"})},
		{"tmpfs", len(spec.Tmpfs) == 1 && spec.Tmpfs[0] == engine.Tmpfs{Path: "/run", Options: "rw,size=16m"}},
		{"init", spec.Init},
		{"network", spec.NetNSPath != "" && !spec.HostNetwork},
		{"log", spec.Log.Driver == "json-file" && spec.Log.Options["max-size"] == "10m" && spec.LogPath != ""},
		{"mounts", len(spec.Mounts) == 2 && spec.Mounts[0].Destination == "/www" && spec.Mounts[0].ReadOnly && spec.Mounts[1].Destination == "/scratch"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("spec %s wrong: %+v", c.what, spec)
		}
	}
}

func TestStaticPortHeldByAnotherTaskKeepsTaskPending(t *testing.T) {
	h := newHarness(t, nil)
	hostTask := func(id string) engine.TaskDef {
		def := simpleTask("arn:aws:ecs:us-east-1:0:task/lab/"+id, engine.ContainerDef{Name: "c", Image: "img", Essential: true,
			Ports: []engine.PortMapping{{ContainerPort: 8080, Protocol: "tcp"}}})
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
