package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

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
		{"ulimits", len(spec.Ulimits) == 1 && spec.Ulimits[0] == container.Ulimit{Name: "nofile", Soft: 4096, Hard: 8192}},
		{"caps", slices.Equal(spec.CapAdd, []string{"NET_BIND_SERVICE"}) && slices.Equal(spec.CapDrop, []string{"MKNOD"})},
		{"dns/hosts", slices.Equal(spec.DNS, []string{"10.0.0.2"}) && slices.Equal(spec.ExtraHosts, []string{"db.internal:10.0.0.9"})},
		{"tmpfs", len(spec.Tmpfs) == 1 && spec.Tmpfs[0] == container.Tmpfs{Path: "/run", Options: "rw,size=16m"}},
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
