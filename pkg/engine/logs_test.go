package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
)

// callLog records LogShipper and LogRemover calls in order.
type callLog struct {
	mu    sync.Mutex
	calls []string
	logs  []engine.ContainerLog
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, s)
}

func (l *callLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

type fakeShipper struct{ l *callLog }

var _ engine.LogShipper = fakeShipper{}

func (f fakeShipper) Start(_ context.Context, c engine.ContainerLog) error {
	f.l.mu.Lock()
	f.l.logs = append(f.l.logs, c)
	f.l.mu.Unlock()
	f.l.add("start " + c.ID)
	return nil
}

func (f fakeShipper) Drain(ctx context.Context, id string) error {
	if _, ok := ctx.Deadline(); !ok {
		f.l.add("unbounded drain " + id)
	}
	f.l.add("drain " + id)
	return nil
}

func (f fakeShipper) Remove(id string) error { f.l.add("remove " + id); return nil }

type fakeRemover struct{ l *callLog }

func (f fakeRemover) RemoveLogs(_ context.Context, path string) error {
	f.l.add("remove-logs " + path)
	return nil
}

// TestLogShipperLifecycle proves the engine starts shipping a container
// whose log driver is remote when it starts (not json-file ones), starts
// it again after an agent restart, drains it with a bounded context when
// it exits, and removes it before its logs are deleted.
func TestLogShipperLifecycle(t *testing.T) {
	calls := &callLog{}
	h := newHarness(t, func(o *engine.Options) {
		o.CleanupWait = 20 * time.Millisecond
		o.LogShipper = fakeShipper{calls}
		o.Logs = fakeRemover{calls}
		o.LogDrivers = []string{"awslogs"}
	})
	def := webTask(t)
	def.Volumes[0].SourcePath = t.TempDir()
	app, shipper := engine.ContainerID(def.ARN, "app"), engine.ContainerID(def.ARN, "shipper")
	h.apply(def, engine.TaskRunning)
	h.waitStatus(def.ARN, engine.TaskRunning)
	if got := calls.snapshot(); !slices.Equal(got, []string{"start " + shipper}) {
		t.Fatalf("shipper calls %v, want only the awslogs container started", got)
	}
	c := calls.logs[0]
	if c.Log.Driver != "awslogs" || c.Log.Options["awslogs-group"] != "/berth/web" || c.Name != "shipper" ||
		c.TaskARN != def.ARN || c.Family != def.Family || c.LogPath == "" || c.Image == "" {
		t.Fatalf("shipper started with %+v", c)
	}

	h.stop()
	h.start()
	h.waitStatus(def.ARN, engine.TaskRunning)
	// The recovered task reads RUNNING before its goroutine resumes the
	// shipping.
	for deadline := time.Now().Add(5 * time.Second); len(calls.snapshot()) < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := calls.snapshot(); !slices.Equal(got, []string{"start " + shipper, "start " + shipper}) {
		t.Fatalf("shipper calls after a restart %v, want the shipper started again", got)
	}

	h.apply(def, engine.TaskStopped)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := h.eng.Task(def.ARN); !ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := calls.snapshot()
	drain, rmShipper, rmApp := slices.Index(got, "drain "+shipper), slices.Index(got, "remove "+shipper), slices.Index(got, "remove "+app)
	firstLogs := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "remove-logs ") })
	if drain < 0 || rmShipper < drain || rmApp < 0 || firstLogs < max(rmShipper, rmApp) || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "unbounded") }) {
		t.Fatalf("calls %v: want a bounded drain on exit, then remove before the logs are deleted", got)
	}
}

// TestLogConfigRefused proves a driver missing from the allowed list, an
// unknown option and a bad value stop the task before any container is created,
// with a reason naming them.
func TestLogConfigRefused(t *testing.T) {
	tests := []struct {
		name       string
		mod        func(*container.LogConfig)
		allowed    []string
		wantReason []string
	}{
		{"driver not allowed", func(*container.LogConfig) {}, []string{"syslog"},
			[]string{"CannotCreateContainerError: ", "container shipper", `"awslogs"`, "ECS_AVAILABLE_LOGGING_DRIVERS"}},
		{"unknown driver", func(l *container.LogConfig) { l.Driver, l.Options = "splunk", nil }, nil,
			[]string{"CannotCreateContainerError: ", `"splunk"`}},
		{"unknown option", func(l *container.LogConfig) { l.Options["awslogs-grup"] = "x" }, nil,
			[]string{"CannotCreateContainerError: ", `"awslogs-grup"`}},
		{"bad value", func(l *container.LogConfig) { l.Options["mode"] = "sometimes" }, nil,
			[]string{"CannotCreateContainerError: ", `"mode"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *engine.Options) { o.LogDrivers = tc.allowed })
			def := webTask(t)
			def.ARN += "-" + strings.ReplaceAll(tc.name, " ", "-")
			for i := range def.Containers {
				if def.Containers[i].Name == "shipper" {
					tc.mod(&def.Containers[i].Spec.Log)
				}
			}
			h.apply(def, engine.TaskRunning)
			st := h.waitStatus(def.ARN, engine.TaskStopped)
			for _, w := range tc.wantReason {
				if !strings.Contains(st.StoppedReason, w) {
					t.Fatalf("stopped reason %q, want it to contain %q", st.StoppedReason, w)
				}
			}
			if n := h.rt.count("create "); n != 0 {
				t.Fatalf("%d creates for a refused task (%s)", n, fmt.Sprint(h.rt.eventLog()))
			}
		})
	}
}
