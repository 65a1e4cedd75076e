package agent_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
)

func payload(tasks ...*api.Task) *api.PayloadMessage {
	return &api.PayloadMessage{MessageID: "m-" + randomHex(4), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab", Tasks: tasks}
}

func oneContainerTask(id, image string, cmd []string, hostConfig string) *api.Task {
	return &api.Task{
		Arn:           "arn:aws:ecs:us-east-1:000000000000:task/lab/" + id,
		Family:        "fail",
		Version:       "1",
		DesiredStatus: api.StatusRunning,
		NetworkMode:   api.NetworkModeBridge,
		Containers: []*api.Container{{
			Name: "main", Image: image, Essential: true, Memory: 32, Command: cmd,
			DockerConfig: api.RawDockerConfig{Version: "1.17", Config: "{}", HostConfig: hostConfig},
		}},
	}
}

// TestFailureReasons proves that a task that cannot run stops with ECS's
// reason and that the agent keeps serving other tasks.
func TestFailureReasons(t *testing.T) {
	h := newHostEnv(t)
	a := h.runAgent(t, h.config(t))
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})

	tests := []struct {
		name            string
		task            *api.Task
		wantReason      string
		wantExit        *int
		containerReason string
	}{
		{
			name:            "container killed for memory",
			task:            oneContainerTask("oom", img.Ref, []string{"/bin/sh", "-c", "a=0123456789; while true; do a=$a$a; done"}, "{}"),
			wantReason:      "Essential container in task exited",
			wantExit:        ptr(137),
			containerReason: "OutOfMemoryError: Container killed due to memory usage",
		},
		{
			name:       "essential container exits",
			task:       oneContainerTask("essential", img.Ref, []string{"/bin/sh", "-c", "exit 3"}, "{}"),
			wantReason: "Essential container in task exited",
			wantExit:   ptr(3),
		},
		{
			name:            "image does not exist",
			task:            oneContainerTask("noimage", reg.Host+"/does/not-exist:latest", nil, "{}"),
			wantReason:      "CannotPullContainerError: ",
			containerReason: "CannotPullContainerError: ",
		},
		{
			name:       "unsupported hostConfig field",
			task:       oneContainerTask("unsupported", img.Ref, []string{"/bin/sh", "-c", "sleep 60"}, `{"PidsLimit": 10}`),
			wantReason: `unsupported hostConfig field "PidsLimit"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handle(t, a, payload(tc.task))
			st := waitTask(t, a, tc.task.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
			if !strings.Contains(st.StoppedReason, tc.wantReason) {
				t.Fatalf("stopped reason %q, want it to contain %q", st.StoppedReason, tc.wantReason)
			}
			c := container(st, "main")
			if tc.wantExit != nil && (c.ExitCode == nil || *c.ExitCode != *tc.wantExit) {
				t.Fatalf("exit code %v, want %d", exitOf(c), *tc.wantExit)
			}
			if !strings.HasPrefix(c.Reason, tc.containerReason) {
				t.Fatalf("container reason %q, want it to start with %q", c.Reason, tc.containerReason)
			}
			keys, _ := outboxKeys(t, a, tc.task.Arn)
			if len(keys) == 0 || keys[len(keys)-1] != "task/STOPPED" {
				t.Fatalf("outbox %v: want it to end with task/STOPPED", keys)
			}
		})
	}

	// The agent is still healthy and runs a good task.
	good := oneContainerTask("good", img.Ref, []string{"/bin/sh", "-c", "sleep 600"}, "{}")
	handle(t, a, payload(good))
	waitTask(t, a, good.Arn, "RUNNING", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	resp, err := http.Get("http://" + a.IntrospectionAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz after failures: %v %v", resp, err)
	}
	resp.Body.Close()
	stopped := *good
	stopped.DesiredStatus = api.StatusStopped
	handle(t, a, payload(&stopped))
	st := waitTask(t, a, good.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	if c := container(st, "main"); c.ExitCode == nil || *c.ExitCode != 137 && *c.ExitCode != 143 {
		t.Fatalf("stopped container exit %v, want 143 (SIGTERM) or 137 (SIGKILL)", exitOf(c))
	}
	assertNoNetns(t, h)
}

func ptr[T any](v T) *T { return &v }
