package agent_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	docker "github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
)

// lastStats returns the newest task/stats document a probe container
// printed (a line "STATS <json>"), decoded with Docker's own types.
func lastStats(t *testing.T, logPath string) (map[string]docker.StatsResponse, bool) {
	t.Helper()
	b, _ := os.ReadFile(logPath)
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var entry struct{ Log string }
		if json.Unmarshal(sc.Bytes(), &entry) == nil && strings.HasPrefix(entry.Log, "STATS {") {
			last = strings.TrimPrefix(strings.TrimSpace(entry.Log), "STATS ")
		}
	}
	if last == "" {
		return nil, false
	}
	var docs map[string]docker.StatsResponse
	if err := json.Unmarshal([]byte(last), &docs); err != nil {
		t.Fatalf("task/stats does not decode with Docker's StatsResponse: %v\n%s", err, last)
	}
	return docs, true
}

// TestMetricsSampledAndServed runs a task whose container reads its own
// task metadata /task/stats every second. With metrics on, the agent's
// sampler publishes statistic sets for it and /stats serves the sampler's
// two newest samples in Docker's format (precpu_stats one sampling
// interval earlier); with ECS_DISABLE_METRICS=true nothing is sampled or
// published and /stats still answers, read at once (no precpu_stats).
func TestMetricsSampledAndServed(t *testing.T) {
	h := newHostEnv(t)
	reg := testenv.Registry(t)
	loop := `while true; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ` +
		`echo "STATS $(wget -q -O - $ECS_CONTAINER_METADATA_URI_V4/task/stats 2>&1)"; sleep 1; done`
	img := testenv.BuildImage(t, reg, "agent/statsprobe", testenv.ImageSpec{Cmd: []string{"/bin/sh", "-c", loop}})

	for _, disabled := range []bool{false, true} {
		name := "metrics on"
		if disabled {
			name = "ECS_DISABLE_METRICS"
		}
		t.Run(name, func(t *testing.T) {
			cfg := h.config(t)
			withTaskRoles(t, cfg)
			cfg.Metrics.Disabled = disabled
			cfg.Metrics.PollInterval = time.Second // below the 5s that config allows, for speed

			arn := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
			payload := func(desired string) *api.PayloadMessage {
				return &api.PayloadMessage{MessageID: randomHex(8), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
					Tasks: []*api.Task{{Arn: arn, Family: "statsprobe", Version: "4", DesiredStatus: desired, NetworkMode: "bridge",
						Containers: []*api.Container{{Name: "probe", Image: img.Ref, Essential: true, Memory: 64}}}}}
			}
			a, _ := h.startAgent(t, cfg)
			handle(t, a, payload("RUNNING"))
			st := waitTask(t, a, arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
			id, logPath := container(st, "probe").RuntimeID, container(st, "probe").LogPath

			deadline := time.Now().Add(time.Minute)
			var doc docker.StatsResponse
			for {
				docs, ok := lastStats(t, logPath)
				d, found := docs[id]
				if ok && found && (disabled || !d.PreRead.IsZero()) {
					doc = d
					break
				}
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(logPath)
					t.Fatalf("no stats document for %s with a sample in the log:\n%s", id, b[max(0, len(b)-2000):])
				}
				time.Sleep(500 * time.Millisecond)
			}
			if doc.ID != id || doc.Name != "probe" || doc.Read.IsZero() || doc.CPUStats.CPUUsage.TotalUsage == 0 ||
				doc.CPUStats.SystemUsage == 0 || doc.CPUStats.OnlineCPUs != uint32(goruntime.NumCPU()) ||
				doc.MemoryStats.Usage == 0 || doc.MemoryStats.Limit < 64<<20 || len(doc.BlkioStats.IoServiceBytesRecursive) != 3 ||
				doc.PidsStats.Current == 0 {
				t.Errorf("stats document lacks figures: %+v", doc)
			}
			if !disabled {
				gap := doc.Read.Sub(doc.PreRead)
				if gap < 500*time.Millisecond || gap > 3*time.Second ||
					doc.PreCPUStats.CPUUsage.TotalUsage > doc.CPUStats.CPUUsage.TotalUsage || doc.PreCPUStats.SystemUsage >= doc.CPUStats.SystemUsage {
					t.Errorf("precpu_stats is not the sample one interval (1s) before: read %s preread %s, cpu %d after %d, system %d after %d",
						doc.Read, doc.PreRead, doc.CPUStats.CPUUsage.TotalUsage, doc.PreCPUStats.CPUUsage.TotalUsage,
						doc.CPUStats.SystemUsage, doc.PreCPUStats.SystemUsage)
				}
				if len(doc.Networks) == 0 {
					t.Errorf("bridge task without network figures: %+v", doc)
				}
			} else if !doc.PreRead.IsZero() {
				t.Errorf("metrics off: preread %s, want none (read at once)", doc.PreRead)
			}
			checkPublished(t, a, arn, disabled)
			handle(t, a, payload("STOPPED"))
			waitTask(t, a, arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
		})
	}
}

// checkPublished: with metrics on, TaskMetrics carries the task's
// container with CPU and memory sets; with them off it never carries
// anything.
func checkPublished(t *testing.T, a *agent.Agent, arn string, disabled bool) {
	t.Helper()
	if disabled {
		if tasks, idle := a.TaskMetrics(); len(tasks) != 0 || idle {
			t.Errorf("metrics off: TaskMetrics = %d tasks, idle %v; want nothing", len(tasks), idle)
		}
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tasks, _ := a.TaskMetrics()
		for _, tm := range tasks {
			if tm.TaskArn != arn || tm.TaskDefinitionFamily != "statsprobe" || tm.TaskDefinitionVersion != "4" || len(tm.ContainerMetrics) != 1 {
				continue
			}
			cm := tm.ContainerMetrics[0]
			if cm.ContainerName == "probe" && cm.CPUStatsSet != nil && cm.MemoryStatsSet != nil && *cm.CPUStatsSet.SampleCount > 0 &&
				cm.NetworkStatsSet != nil && cm.StorageStatsSet != nil {
				return
			}
			t.Fatalf("task metric lacks sets: %+v", cm)
		}
		if time.Now().After(deadline) {
			t.Fatal("no task metric for the task within 30s")
		}
		time.Sleep(time.Second)
	}
}
