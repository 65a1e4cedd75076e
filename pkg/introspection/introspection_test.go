package introspection_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/introspection"
)

type fakeTasks struct {
	mu    sync.Mutex
	tasks []engine.TaskState
}

func (f *fakeTasks) Tasks() []engine.TaskState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tasks)
}

func (f *fakeTasks) Metrics() engine.Metrics { return engine.Metrics{Pulls: 3, Starts: 2} }

// stop marks every container STOPPED.
func (f *fakeTasks) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.tasks {
		var cs []*engine.ContainerState
		for _, c := range f.tasks[i].Containers {
			cp := *c
			cp.KnownStatus = engine.ContainerStopped
			cs = append(cs, &cp)
		}
		f.tasks[i].Containers = cs
	}
}

const arn = "arn:aws:ecs:us-east-1:000000000000:task/lab/3b2f9c1d"

func newServer(t *testing.T, logPath string) *httptest.Server {
	srv, _ := newServerTasks(t, logPath)
	return srv
}

func newServerTasks(t *testing.T, logPath string) (*httptest.Server, *fakeTasks) {
	st := engine.TaskState{
		Def: engine.TaskDef{ARN: arn, Family: "web", Version: "4", NetworkMode: "bridge",
			Containers: []engine.ContainerDef{{Name: "app", Mounts: []engine.MountPoint{{Volume: "content", ContainerPath: "/www"}}}}},
		DesiredStatus: engine.TaskRunning,
		KnownStatus:   engine.TaskRunning,
		VolumePaths:   map[string]string{"content": "/srv/web"},
		Containers: []*engine.ContainerState{{
			Name: "app", RuntimeID: "3b2f9c1d-app", KnownStatus: engine.ContainerRunning, LogPath: logPath,
			Bindings: []api.NetworkBinding{{ContainerPort: 8080, HostPort: 49153, Protocol: "tcp", BindIP: "0.0.0.0"}},
		}},
	}
	tasks := &fakeTasks{tasks: []engine.TaskState{st}}
	h := introspection.New(introspection.Options{
		Tasks: tasks,
		Metadata: func() introspection.Metadata {
			return introspection.Metadata{Cluster: "lab", Version: "Berth Agent - test"}
		},
		Pending:         func() (int, error) { return 5, nil },
		LogPollInterval: 10 * time.Millisecond,
		Cleanup: func() []introspection.PendingCleanup {
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			return []introspection.PendingCleanup{{Resource: "sandbox berth-1a2b3c4d-0123456789abcdef", Task: "3b2f9c1d",
				Error: "remove netns file: device or resource busy", Attempts: 2, Since: at, NextAttempt: at.Add(2 * time.Second)}}
		},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, tasks
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, b.String()
}

func TestECSShapes(t *testing.T) {
	srv := newServer(t, "")
	tests := []struct {
		path     string
		wantCode int
		want     string // JSON compared after normalising
	}{
		{"/v1/metadata", 200, `{"Cluster":"lab","Version":"Berth Agent - test"}`},
		{"/v1/tasks", 200, `{"Tasks":[{"Arn":"` + arn + `","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"4","Containers":[{"DockerId":"3b2f9c1d-app","DockerName":"3b2f9c1d-app","Name":"app","Ports":[{"ContainerPort":8080,"Protocol":"tcp","HostPort":49153}],"Volumes":[{"DockerName":"content","Source":"/srv/web","Destination":"/www"}]}]}]}`},
		{"/v1/tasks?taskarn=" + arn, 200, `{"Arn":"` + arn + `","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"4","Containers":[{"DockerId":"3b2f9c1d-app","DockerName":"3b2f9c1d-app","Name":"app","Ports":[{"ContainerPort":8080,"Protocol":"tcp","HostPort":49153}],"Volumes":[{"DockerName":"content","Source":"/srv/web","Destination":"/www"}]}]}`},
		{"/v1/tasks?dockerid=3b2f9c1d", 200, `{"Arn":"` + arn + `","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"4","Containers":[{"DockerId":"3b2f9c1d-app","DockerName":"3b2f9c1d-app","Name":"app","Ports":[{"ContainerPort":8080,"Protocol":"tcp","HostPort":49153}],"Volumes":[{"DockerName":"content","Source":"/srv/web","Destination":"/www"}]}]}`},
		{"/v1/cleanup", 200, `{"Pending":[{"Resource":"sandbox berth-1a2b3c4d-0123456789abcdef","Task":"3b2f9c1d","Error":"remove netns file: device or resource busy","Attempts":2,"Since":"2026-01-02T03:04:05Z","NextAttempt":"2026-01-02T03:04:07Z"}]}`},
		{"/v1/tasks?taskarn=nope", 404, ""},
		{"/v1/tasks?taskarn=a&dockerid=b", 400, ""},
	}
	for _, tc := range tests {
		code, body := get(t, srv.URL+tc.path)
		if code != tc.wantCode {
			t.Errorf("GET %s: status %d, want %d (body %s)", tc.path, code, tc.wantCode, body)
			continue
		}
		if tc.want == "" {
			continue
		}
		if got, want := normalise(t, body), normalise(t, tc.want); got != want {
			t.Errorf("GET %s:\n got %s\nwant %s", tc.path, got, want)
		}
	}
	code, body := get(t, srv.URL+"/metrics")
	for _, want := range []string{`berth_tasks{status="RUNNING"} 1`, "berth_image_pulls_total 3", "berth_state_changes_pending 5"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (status %d) lacks %q:\n%s", code, want, body)
		}
	}
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

func normalise(t *testing.T, s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func writeLine(t *testing.T, f *os.File, text string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"log": text + "\n", "stream": "stdout", "time": time.Now().UTC().Format(time.RFC3339Nano)})
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

func TestLogsTailAndFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app-json.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 5 {
		writeLine(t, f, fmt.Sprintf("old %d", i))
	}
	srv, tasks := newServerTasks(t, path)
	base := srv.URL + "/v1/tasks/3b2f9c1d/containers/app/logs"
	if code, body := get(t, base+"?tail=2"); code != 200 || body != "old 3\nold 4\n" {
		t.Fatalf("tail=2: %d %q, want the last two lines", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"?tail=1&follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		return sc.Text()
	}
	if got := next(); got != "old 4" {
		t.Fatalf("first followed line %q, want %q", got, "old 4")
	}
	// Lines written after the request started arrive on the open stream.
	for i := range 3 {
		want := fmt.Sprintf("new %d", i)
		writeLine(t, f, want)
		if got := next(); got != want {
			t.Fatalf("followed line %q, want %q", got, want)
		}
	}
	// Following ends once the container has stopped.
	tasks.stop()
	if sc.Scan() {
		t.Fatalf("unexpected line %q after the container stopped", sc.Text())
	}
	if ctx.Err() != nil {
		t.Fatalf("follow did not end after the container stopped")
	}
	if code, _ := get(t, srv.URL+"/v1/tasks/3b2f9c1d/containers/nope/logs"); code != 404 {
		t.Fatalf("logs of unknown container: status %d, want 404", code)
	}
}
