package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/state"
)

// childEnv names the variable that turns the test binary into a child
// agent; its value is a JSON childSpec.
const childEnv = "BERTH_TEST_AGENT_CHILD"

// childSpec tells a child agent where to run, which payload to deliver
// once ready, and at which step to stop dead (so the parent can SIGKILL it
// at a precise point).
type childSpec struct {
	Host    hostEnv `json:"host"`
	Payload string  `json:"payload,omitempty"`
	// CrashAt is "before|after:<step>:<task-id>/<container>", e.g.
	// "after:create:crash-create/main".
	CrashAt string `json:"crashAt,omitempty"`
}

// runChild is the child agent's main. It prints "READY <introspection
// address>" once the payload is accepted and "CRASHPOINT" when it reaches
// CrashAt, where it blocks until killed.
func runChild(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	cfg, err := spec.Host.loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hook := func(ctx context.Context, s engine.Step) {
		when := "before"
		if s.Done {
			when = "after"
		}
		if fmt.Sprintf("%s:%s:%s/%s", when, s.Name, engine.TaskID(s.TaskARN), s.Container) == spec.CrashAt {
			fmt.Println("CRASHPOINT")
			<-ctx.Done()
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := agent.New(cfg, spec.Host.options(agent.WithStepHook(hook), agent.WithLogger(logger))...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if err := a.Ready(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ready:", err)
		return 2
	}
	if spec.Payload != "" {
		b, err := os.ReadFile(spec.Payload)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		f, err := api.DecodeFrame(b)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if err := a.HandlePayload(ctx, f.(*api.PayloadMessage)); err != nil {
			fmt.Fprintln(os.Stderr, "payload:", err)
			return 2
		}
	}
	fmt.Println("READY", a.IntrospectionAddr())
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// child is a child agent process.
type child struct {
	*agentproc.Child
	addr string
	// seen are lines read while waiting for another: the engine may reach
	// a crash point (CRASHPOINT) before the child prints READY.
	seen []string
}

func startChild(t *testing.T, h *hostEnv, p *api.PayloadMessage, crashAt string) *child {
	t.Helper()
	spec := childSpec{Host: *h, CrashAt: crashAt}
	if p != nil {
		b, err := api.EncodeFrame(p)
		if err != nil {
			t.Fatal(err)
		}
		spec.Payload = filepath.Join(t.TempDir(), "payload.json")
		if err := os.WriteFile(spec.Payload, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &child{Child: agentproc.Start(t, childEnv, spec)}
	c.addr = strings.TrimPrefix(c.waitFor(t, "READY"), "READY ")
	return c
}

// waitFor returns the first line starting with prefix.
func (c *child) waitFor(t *testing.T, prefix string) string {
	t.Helper()
	for i, l := range c.seen {
		if strings.HasPrefix(l, prefix) {
			c.seen = slices.Delete(c.seen, i, i+1)
			return l
		}
	}
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-c.Lines:
			if !ok {
				t.Fatalf("child agent exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			c.seen = append(c.seen, l)
		case <-timeout:
			t.Fatalf("child agent did not print %q; its tasks: %s", prefix, c.dump())
		}
	}
}

// dump returns the child's /v1/tasks, for failure messages.
func (c *child) dump() string {
	if c.addr == "" {
		return "(not ready)"
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + c.addr + "/v1/tasks")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// knownStatus asks the child's introspection API for a task's status.
func (c *child) knownStatus(t *testing.T, arn string) string {
	var tr struct{ KnownStatus string }
	_ = json.Unmarshal([]byte(httpGet(t, "http://"+c.addr+"/v1/tasks?taskarn="+arn)), &tr)
	return tr.KnownStatus
}

func (c *child) waitRunning(t *testing.T, arn string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for c.knownStatus(t, arn) != "RUNNING" {
		if time.Now().After(deadline) {
			t.Fatalf("task %s never RUNNING in the child agent", arn)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crashTask is one essential container that exits 42 on SIGUSR1 and
// otherwise runs forever, with a dynamic host port and a task volume.
func crashTask(id, image string) *api.Task {
	return &api.Task{
		Arn:           "arn:aws:ecs:us-east-1:000000000000:task/lab/" + id,
		Family:        "crash",
		Version:       "1",
		DesiredStatus: api.StatusRunning,
		NetworkMode:   api.NetworkModeBridge,
		Volumes:       []*api.Volume{{Name: "scratch", Type: api.VolumeTypeDocker, DockerVolumeConfiguration: &api.DockerVolumeConfiguration{Scope: api.VolumeScopeTask, Autoprovision: true}}},
		Containers: []*api.Container{{
			Name: "main", Image: image, Essential: true, Memory: 32,
			Command:      []string{"/bin/sh", "-c", `trap "exit 42" USR1; while true; do sleep 0.2; done`},
			PortMappings: []api.PortMapping{{ContainerPort: 80, Protocol: "tcp"}},
			MountPoints:  []api.MountPoint{{SourceVolume: "scratch", ContainerPath: "/scratch"}},
		}},
	}
}

func stopped(t *api.Task) *api.Task {
	s := *t
	s.DesiredStatus = api.StatusStopped
	return &s
}

type ctrd struct {
	cli *containerd.Client
	ctx context.Context
}

func (c ctrd) task(t *testing.T, id string) (pid uint32, created time.Time) {
	t.Helper()
	ctr, err := c.cli.LoadContainer(c.ctx, id)
	if err != nil {
		t.Fatalf("load container %s: %v", id, err)
	}
	info, err := ctr.Info(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := ctr.Task(c.ctx, nil); err == nil {
		pid = tk.Pid()
	}
	return pid, info.CreatedAt
}

// TestKill9Recovery kills the agent with SIGKILL at different points and
// checks that the restarted agent finishes the job: each task reaches its
// desired status, no container is created or started twice, running
// containers keep their PID, exits during the downtime are reported with
// their code, and nothing is leaked.
func TestKill9Recovery(t *testing.T) {
	h := newHostEnv(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "tools/busybox:latest", testenv.ImageSpec{Cmd: []string{"/bin/sh"}})
	cd := testenv.Containerd(t)
	cli := cd.Client(t)
	ct := ctrd{cli: cli, ctx: namespaces.WithNamespace(context.Background(), h.Namespace)}

	tests := []struct {
		name string
		// crash kills the agent at the case's point and returns the tasks
		// with the status each must reach after the restart.
		crash func(t *testing.T, task *api.Task) (desired engine.TaskStatus, check func(t *testing.T, a *agent.Agent))
	}{
		{
			name: "during pull",
			crash: func(t *testing.T, task *api.Task) (engine.TaskStatus, func(*testing.T, *agent.Agent)) {
				c := startChild(t, h, payload(task), "after:pull:"+engine.TaskID(task.Arn)+"/main")
				c.waitFor(t, "CRASHPOINT")
				c.Kill()
				return engine.TaskRunning, nil
			},
		},
		{
			name: "during network setup",
			crash: func(t *testing.T, task *api.Task) (engine.TaskStatus, func(*testing.T, *agent.Agent)) {
				// The sandbox exists but the agent dies before recording it:
				// the restart must sweep it and set up a new one.
				c := startChild(t, h, payload(task), "after:network-setup:"+engine.TaskID(task.Arn)+"/")
				c.waitFor(t, "CRASHPOINT")
				c.Kill()
				before := netnsWithPrefix(h.Prefix)
				return engine.TaskRunning, func(t *testing.T, a *agent.Agent) {
					after := netnsWithPrefix(h.Prefix)
					if len(before) != 1 || len(after) != 1 || before[0] == after[0] {
						t.Fatalf("network namespaces before restart %v, after %v: want the unrecorded one replaced by one new one", before, after)
					}
				}
			},
		},
		{
			name: "during create",
			crash: func(t *testing.T, task *api.Task) (engine.TaskStatus, func(*testing.T, *agent.Agent)) {
				c := startChild(t, h, payload(task), "after:create:"+engine.TaskID(task.Arn)+"/main")
				c.waitFor(t, "CRASHPOINT")
				c.Kill()
				_, created := ct.task(t, engine.ContainerID(task.Arn, "main"))
				return engine.TaskRunning, func(t *testing.T, a *agent.Agent) {
					if _, again := ct.task(t, engine.ContainerID(task.Arn, "main")); !again.Equal(created) {
						t.Fatalf("container created again after the restart (%s, first %s)", again, created)
					}
				}
			},
		},
		{
			name: "while running",
			crash: func(t *testing.T, task *api.Task) (engine.TaskStatus, func(*testing.T, *agent.Agent)) {
				steady := crashTask("steady-"+randomHex(3), img.Ref)
				c := startChild(t, h, payload(task, steady), "")
				c.waitRunning(t, task.Arn)
				c.waitRunning(t, steady.Arn)
				c.Kill()
				pid, _ := ct.task(t, engine.ContainerID(steady.Arn, "main"))
				// The crash task's container exits 42 while no agent runs.
				ctr, _ := cli.LoadContainer(ct.ctx, engine.ContainerID(task.Arn, "main"))
				tk, err := ctr.Task(ct.ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				exitCh, _ := tk.Wait(ct.ctx)
				if err := tk.Kill(ct.ctx, syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
				<-exitCh
				return engine.TaskStopped, func(t *testing.T, a *agent.Agent) {
					st := waitTask(t, a, steady.Arn, "RUNNING", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
					if now, _ := ct.task(t, engine.ContainerID(steady.Arn, "main")); now != pid || container(st, "main").PID != int(pid) {
						t.Fatalf("steady container PID %d (agent says %d), want %d kept", now, container(st, "main").PID, pid)
					}
					_, changes := outboxKeys(t, a, task.Arn)
					var code *int
					for _, c := range changes {
						if c.ContainerName == "main" && c.Status == "STOPPED" {
							code = c.ExitCode
						}
					}
					if code == nil || *code != 42 {
						t.Fatalf("downtime exit reported as %v, want 42 (outbox %s)", code, mustJSON(changes))
					}
					handle(t, a, payload(stopped(steady)))
					waitTask(t, a, steady.Arn, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
				}
			},
		},
		{
			name: "during network teardown",
			crash: func(t *testing.T, task *api.Task) (engine.TaskStatus, func(*testing.T, *agent.Agent)) {
				c := startChild(t, h, payload(task), "")
				c.waitRunning(t, task.Arn)
				c.Kill()
				c = startChild(t, h, payload(stopped(task)), "after:network-teardown:"+engine.TaskID(task.Arn)+"/")
				c.waitFor(t, "CRASHPOINT")
				c.Kill()
				return engine.TaskStopped, nil
			},
		},
		{
			name: "while stopping",
			crash: func(t *testing.T, task *api.Task) (engine.TaskStatus, func(*testing.T, *agent.Agent)) {
				c := startChild(t, h, payload(task), "")
				c.waitRunning(t, task.Arn)
				pid, _ := ct.task(t, engine.ContainerID(task.Arn, "main"))
				c.Kill()
				c = startChild(t, h, payload(stopped(task)), "before:stop:"+engine.TaskID(task.Arn)+"/main")
				c.waitFor(t, "CRASHPOINT")
				c.Kill()
				return engine.TaskStopped, func(t *testing.T, a *agent.Agent) {
					st, _ := a.Task(task.Arn)
					if c := container(st, "main"); c.PID != int(pid) || c.ExitCode == nil || *c.ExitCode != 137 {
						t.Fatalf("stopped container pid %d exit %v, want pid %d kept until stopped with 137 (sh ignores SIGTERM)", c.PID, exitOf(c), pid)
					}
				}
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := crashTask(fmt.Sprintf("crash%d-%s", i, randomHex(3)), img.Ref)
			desired, check := tc.crash(t, task)

			cfg := h.config(t)
			cfg.Containers.TaskCleanupWait = time.Second
			a, stop := h.startAgent(t, cfg)
			st := waitTask(t, a, task.Arn, desired.String(), time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == desired })
			if check != nil {
				check(t, a)
			}
			if desired == engine.TaskRunning {
				if c := container(st, "main"); c.PID == 0 {
					t.Fatalf("recovered task RUNNING without a PID: %s", describe(st))
				}
				handle(t, a, payload(stopped(task)))
			}
			// After the clean-up wait every task is gone with what it held.
			deadline := time.Now().Add(time.Minute)
			for _, ok := a.Task(task.Arn); ok; _, ok = a.Task(task.Arn) {
				if time.Now().After(deadline) {
					st, _ := a.Task(task.Arn)
					t.Fatalf("task not cleaned up: %s", describe(st))
				}
				time.Sleep(100 * time.Millisecond)
			}
			stop()
			assertNothingLeaked(t, h, ct, task)
		})
	}
}

func netnsWithPrefix(prefix string) []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// assertNothingLeaked checks what a cleaned-up task must not leave behind:
// containers, container snapshots, netns, port allocations, iptables rules
// and task volumes.
func assertNothingLeaked(t *testing.T, h *hostEnv, ct ctrd, task *api.Task) {
	t.Helper()
	cs, err := ct.cli.Containers(ct.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if strings.HasPrefix(c.ID(), engine.TaskID(task.Arn)) {
			t.Errorf("container %s left behind", c.ID())
		}
	}
	_ = ct.cli.SnapshotService(h.Snapshotter).Walk(ct.ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive && strings.HasPrefix(info.Name, engine.TaskID(task.Arn)) {
			t.Errorf("active snapshot %s left behind", info.Name)
		}
		return nil
	})
	assertNoNetns(t, h)
	db, err := state.OpenDir(h.DataDir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := db.LoadPorts()
	db.Close()
	if err != nil || len(ports) != 0 {
		t.Errorf("port allocations left: %+v (%v)", ports, err)
	}
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	_, subnet, _ := net.ParseCIDR(h.Subnet)
	prefix := strings.Join(strings.Split(subnet.IP.String(), ".")[:3], ".") + "."
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, prefix) && !strings.Contains(line, h.Subnet) {
			t.Errorf("iptables rule for a task address left: %s", line)
		}
	}
	if _, err := os.Stat(filepath.Join(h.DataDir, "volumes", engine.TaskID(task.Arn))); !os.IsNotExist(err) {
		t.Errorf("task volume directory left (%v)", err)
	}
}
