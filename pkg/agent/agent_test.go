package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
)

// TestFixturesDecode proves every shared protocol fixture decodes, that the
// tasks in payloads convert into engine definitions, and that frames of
// unknown types come out as UnknownFrame instead of an error.
func TestFixturesDecode(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "api", "testdata", "fixtures", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures found (%v)", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := api.DecodeFrame(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if pm, ok := f.(*api.PayloadMessage); ok {
			for _, task := range pm.Tasks {
				def := engine.FromAPI(task, pm.ClusterArn)
				if def.ARN != task.Arn || len(def.Containers) != len(task.Containers) {
					t.Errorf("%s: task %s converted to %d containers, want %d", filepath.Base(p), task.Arn, len(def.Containers), len(task.Containers))
				}
			}
		}
	}
	f, err := api.DecodeFrame([]byte(`{"type":"SomethingNew","message":{"x":1}}`))
	if err != nil {
		t.Fatalf("unknown frame type: %v", err)
	}
	if _, ok := f.(*api.UnknownFrame); !ok {
		t.Fatalf("unknown frame type decoded as %T, want *api.UnknownFrame", f)
	}
}

// webEnv builds the two images of the web fixture and the host path it
// mounts, and returns the fixture payloads pointed at them.
func webEnv(t *testing.T, h *hostEnv) (run, stop *api.PayloadMessage, content string) {
	t.Helper()
	reg := testenv.Registry(t)
	testenv.BuildImage(t, reg, "web/httpd:1.4", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	testenv.BuildImage(t, reg, "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	content = t.TempDir()
	if err := os.WriteFile(filepath.Join(content, "index.html"), []byte("hello from berth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run = h.fixture(t, "PayloadMessage-berth-web-task.json")
	run.Tasks[0].Volume("content").Host.SourcePath = content
	// Keep the test short: probe health every 500ms instead of 5s.
	app := run.Tasks[0].Container("app")
	s, err := app.DockerConfig.Decode()
	if err != nil {
		t.Fatal(err)
	}
	s.Config.Healthcheck.Interval = 500 * time.Millisecond
	if app.DockerConfig, err = api.EncodeDockerConfig(s); err != nil {
		t.Fatal(err)
	}
	stop = h.fixture(t, "PayloadMessage-berth-stop-task.json")
	return run, stop, content
}

func handle(t *testing.T, a *agent.Agent, p *api.PayloadMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.HandlePayload(ctx, p); err != nil {
		t.Fatalf("HandlePayload %s: %v", p.MessageID, err)
	}
}

// outboxKeys renders the outbox as "container/STATUS[+HEALTH]" and "task/STATUS".
func outboxKeys(t *testing.T, a *agent.Agent, arn string) ([]string, []api.StateChange) {
	t.Helper()
	changes, err := a.PendingStateChanges()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var mine []api.StateChange
	for _, c := range changes {
		if c.TaskARN != arn {
			continue
		}
		mine = append(mine, c)
		k := "task"
		if c.Kind == api.ChangeContainer {
			k = c.ContainerName
		}
		k += "/" + c.Status
		if c.HealthStatus != "" {
			k += "+" + c.HealthStatus
		}
		keys = append(keys, k)
	}
	return keys, mine
}

func TestWebTaskFixture(t *testing.T) {
	h := newHostEnv(t)
	a := h.runAgent(t, h.config(t))
	run, stop, _ := webEnv(t, h)
	arn := run.Tasks[0].Arn

	handle(t, a, run)
	handle(t, a, run) // redelivery changes nothing
	st := waitTask(t, a, arn, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	if got := container(st, "app").Health; got.String() != "HEALTHY" {
		t.Fatalf("task RUNNING with app %s, want HEALTHY", got)
	}
	keys, changes := outboxKeys(t, a, arn)
	healthy, shipper := slices.Index(keys, "app/RUNNING+HEALTHY"), slices.Index(keys, "shipper/RUNNING")
	if healthy < 0 || shipper < healthy || !slices.Contains(keys, "task/RUNNING") {
		t.Fatalf("outbox %v: want app HEALTHY, then shipper RUNNING, and task RUNNING", keys)
	}
	var appBindings []api.NetworkBinding
	for _, c := range changes {
		if c.ContainerName == "app" && c.Status == "RUNNING" && c.HealthStatus == "" {
			appBindings = c.NetworkBindings
			if c.RuntimeID == "" || !strings.HasPrefix(c.ImageDigest, "sha256:") {
				t.Errorf("app RUNNING change lacks runtime id or image digest: %s", mustJSON(c))
			}
		}
	}
	var dyn uint16
	for _, b := range appBindings {
		if b.ContainerPort == 8080 {
			dyn = b.HostPort
		}
	}
	if dyn < h.PortFirst || dyn > h.PortFirst+99 {
		t.Fatalf("app bindings %s: want 8080 on a port in %d-%d", mustJSON(appBindings), h.PortFirst, h.PortFirst+99)
	}
	body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", dyn))
	if body != "hello from berth\n" {
		t.Fatalf("GET through the dynamic port returned %q", body)
	}

	t.Run("introspection", func(t *testing.T) { checkIntrospection(t, a, arn) })

	handle(t, a, stop)
	st = waitTask(t, a, arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	keys, _ = outboxKeys(t, a, arn)
	if s, ap := slices.Index(keys, "shipper/STOPPED"), slices.Index(keys, "app/STOPPED"); s < 0 || ap < s {
		t.Fatalf("outbox %v: want shipper STOPPED before app STOPPED", keys)
	}
	for _, c := range st.Containers {
		if c.ExitCode == nil {
			t.Fatalf("container %s stopped without an exit code: %s", c.Name, describe(st))
		}
	}
	if st.StoppedReason != engine.ReasonStoppedByUser || !slices.Contains(keys, "task/STOPPED") {
		t.Fatalf("task stopped with %q (outbox %v), want %q and a task STOPPED change", st.StoppedReason, keys, engine.ReasonStoppedByUser)
	}
	assertNoNetns(t, h)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var lastErr error
	for range 20 {
		resp, err := client.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 {
				return string(b)
			}
			lastErr = fmt.Errorf("status %d, body %q, err %v", resp.StatusCode, b, err)
		} else {
			lastErr = err
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

// assertNoNetns fails when a network namespace with the agent's prefix is left.
func assertNoNetns(t *testing.T, h *hostEnv) {
	t.Helper()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), h.Prefix) {
			t.Errorf("network namespace %s left behind", e.Name())
		}
	}
}

func checkIntrospection(t *testing.T, a *agent.Agent, arn string) {
	base := "http://" + a.IntrospectionAddr().String()
	var tasks struct {
		Tasks []struct {
			Arn, DesiredStatus, KnownStatus, Family, Version string
			Containers                                       []struct{ DockerId, DockerName, Name string }
		}
	}
	if err := json.Unmarshal([]byte(httpGet(t, base+"/v1/tasks")), &tasks); err != nil {
		t.Fatal(err)
	}
	if len(tasks.Tasks) != 1 || tasks.Tasks[0].Arn != arn || tasks.Tasks[0].KnownStatus != "RUNNING" || tasks.Tasks[0].Family != "web" || len(tasks.Tasks[0].Containers) != 2 {
		t.Fatalf("/v1/tasks = %+v", tasks)
	}
	dockerID := tasks.Tasks[0].Containers[0].DockerId
	var one struct{ Arn string }
	if err := json.Unmarshal([]byte(httpGet(t, base+"/v1/tasks?dockerid="+dockerID)), &one); err != nil || one.Arn != arn {
		t.Fatalf("/v1/tasks?dockerid=%s = %+v (%v)", dockerID, one, err)
	}
	if err := json.Unmarshal([]byte(httpGet(t, base+"/v1/tasks?taskarn="+arn)), &one); err != nil || one.Arn != arn {
		t.Fatalf("/v1/tasks?taskarn= = %+v (%v)", one, err)
	}
	var md struct{ Cluster, Version string }
	if err := json.Unmarshal([]byte(httpGet(t, base+"/v1/metadata")), &md); err != nil || md.Cluster != "lab" || md.Version == "" {
		t.Fatalf("/v1/metadata = %+v (%v)", md, err)
	}
	if m := httpGet(t, base+"/metrics"); !strings.Contains(m, `berth_tasks{status="RUNNING"} 1`) || !strings.Contains(m, "berth_state_changes_pending ") {
		t.Fatalf("/metrics lacks task counts or pending changes:\n%s", m)
	}

	// shipper prints "shipping" every 5 seconds: a follower sees new lines
	// arrive on the open stream.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/tasks/"+engine.TaskID(arn)+"/containers/shipper/logs?follow=true&since="+fmt.Sprint(time.Now().Unix()), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for i := range 2 {
		if !sc.Scan() {
			t.Fatalf("log stream ended after %d lines: %v", i, sc.Err())
		}
		if sc.Text() != "shipping" {
			t.Fatalf("streamed line %q, want %q", sc.Text(), "shipping")
		}
	}
}
