package chaos_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/engine"
)

// page is what each task's web server answers on its host port.
const page = "hello from a chaos task\n"

// harness is one run: the endpoint, the agent, their containerd, and what
// the test was told (acknowledged) and therefore expects.
type harness struct {
	rnd        *mrand.Rand
	fig        figures
	containerd *testenv.OwnedContainerd
	cli        *containerd.Client
	ns         string
	endpoint   *endpoint
	agent      *proc
	admin      *ecs.Client
	instance   string
	taskDef    string
	// tasks is every task RunTask acknowledged, with what must become of it.
	tasks map[string]*expected
	order []string
	// baseline is the host state (rules, namespaces, links) with the agent
	// connected and no task yet.
	baseline hostState
}

// expected is what must become of one task.
type expected struct {
	arn string
	// stopped: StopTask was acknowledged, or its container was killed.
	stopped bool
	// hostKilled: its container was killed from the host (exit 137).
	hostKilled bool
	// pid is the container's process while it runs: a restarted agent must
	// adopt it, never start the container again.
	pid uint32
	// port is its host port while it runs.
	port int32
}

func newHarness(t *testing.T, bins string, rnd *mrand.Rand) *harness {
	t.Helper()
	h := &harness{rnd: rnd, tasks: map[string]*expected{}, fig: figures{recover: map[string][]time.Duration{}}}
	h.containerd = testenv.OwnContainerd(t)
	h.cli = h.containerd.Client(t)
	h.ns = h.containerd.Namespace(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "chaos/web", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte(page)}},
		Cmd:   []string{"/bin/httpd", "-f", "-p", "80", "-h", "/srv"},
	})
	h.endpoint = newEndpoint(t, filepath.Join(bins, "berth-cluster"), t.TempDir())
	adminKey := h.endpoint.key(t, "admin")
	agentKey := h.endpoint.key(t, "agent")
	h.endpoint.startServing(t)
	h.admin = h.endpoint.client(adminKey)
	ctx := context.Background()
	if _, err := h.admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String(cluster)}); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	out, err := h.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("chaos-web"),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("web"), Image: aws.String(img.Ref), Memory: aws.Int32(16), Essential: aws.Bool(true),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), Protocol: types.TransportProtocolTcp}},
		}}})
	if err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	h.taskDef = aws.ToString(out.TaskDefinition.TaskDefinitionArn)

	h.agent = newAgent(t, filepath.Join(bins, "berth-agent"), t.TempDir(), "http://"+h.endpoint.addr, agentKey,
		h.containerd.Address, h.containerd.Snapshotter, h.ns)
	h.agent.start(t)
	if err := waitFor(ctx, 2*time.Minute, h.connected); err != nil {
		t.Fatalf("the agent did not connect: %v; its log:\n%s", err, h.agent.tail())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log (end):\n%s\nendpoint log (end):\n%s", h.agent.tail(), h.endpoint.tail())
		}
	})
	h.takeBaseline(t)
	return h
}

// takeBaseline runs one task and stops it, so that the agent has
// installed its network (a bridge and agent-wide rules that stay while it
// runs), and records the host state then: what must be there again once
// every task is stopped. The task's own parts must be gone already.
func (h *harness) takeBaseline(t *testing.T) {
	t.Helper()
	h.runTasks(t, 1)
	h.converge(t, "the first task")
	if len(h.order) != 1 {
		t.Fatalf("the first task was not placed")
	}
	first := h.tasks[h.order[0]]
	port := first.port
	h.stopTask(t, first.arn)
	h.converge(t, "the first task's stop")
	h.waitCleanedUp(t, "the first task's stop")
	h.baseline = readHostState(t)
	for _, l := range h.baseline {
		if strings.HasPrefix(l, "veth: ") || strings.Contains(l, fmt.Sprintf("dport %d ", port)) || strings.Contains(l, fmt.Sprintf("--dport %d", port)) {
			h.violation(t, "the first task's stop", "left behind: %s", l)
		}
	}
	if len(listNetns()) > 0 {
		h.violation(t, "the first task's stop", "network namespaces left: %v", listNetns())
	}
}

func listNetns() []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		out = append(out, "/run/netns/"+e.Name())
	}
	return out
}

// waitCleanedUp waits until the agent has removed every container (the
// clean-up wait is 5 s).
func (h *harness) waitCleanedUp(t *testing.T, after string) {
	t.Helper()
	if err := waitFor(context.Background(), 2*time.Minute, func(context.Context) error {
		if cs := h.containers(t); len(cs) > 0 {
			return fmt.Errorf("%d containers not cleaned up: %+v", len(cs), cs)
		}
		return nil
	}); err != nil {
		h.violation(t, after, "%v", err)
	}
}

// connected reports whether the cluster's one instance is connected.
func (h *harness) connected(ctx context.Context) error {
	list, err := h.admin.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String(cluster)})
	if err != nil {
		return err
	}
	if len(list.ContainerInstanceArns) != 1 {
		return fmt.Errorf("instances %v, want one", list.ContainerInstanceArns)
	}
	out, err := h.admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String(cluster), ContainerInstances: list.ContainerInstanceArns})
	if err != nil {
		return err
	}
	if len(out.ContainerInstances) != 1 || !out.ContainerInstances[0].AgentConnected {
		return errors.New("instance not connected")
	}
	h.instance = list.ContainerInstanceArns[0]
	return nil
}

// waitDisconnected waits until the endpoint shows the killed agent
// disconnected, so that the recovery measured and checked next is the
// restarted agent's.
func (h *harness) waitDisconnected(t *testing.T) {
	t.Helper()
	if err := waitFor(context.Background(), time.Minute, func(ctx context.Context) error {
		if h.connected(ctx) == nil {
			return errors.New("the killed agent's instance still shows agentConnected")
		}
		return nil
	}); err != nil {
		h.violation(t, "agent kill", "%v", err)
	}
}

// runTasks asks for n tasks; what the endpoint acknowledges must run.
// A refusal (no instance connected at that moment) acknowledges nothing.
func (h *harness) runTasks(t *testing.T, n int) {
	t.Helper()
	out, err := h.admin.RunTask(context.Background(), &ecs.RunTaskInput{Cluster: aws.String(cluster),
		TaskDefinition: aws.String(h.taskDef), Count: aws.Int32(int32(n))})
	if err != nil {
		t.Logf("RunTask refused (nothing acknowledged): %v", err)
		return
	}
	for _, f := range out.Failures {
		t.Logf("RunTask failure (not acknowledged): %s %s", aws.ToString(f.Reason), aws.ToString(f.Detail))
	}
	for _, tk := range out.Tasks {
		arn := aws.ToString(tk.TaskArn)
		t.Logf("step: RunTask acknowledged %s", arn)
		h.tasks[arn] = &expected{arn: arn}
		h.order = append(h.order, arn)
		h.fig.runAcked++
	}
}

// stopTask asks for the task's stop; acknowledged, it must stop.
func (h *harness) stopTask(t *testing.T, arn string) {
	t.Helper()
	if _, err := h.admin.StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String(cluster), Task: aws.String(arn)}); err != nil {
		t.Logf("StopTask %s refused (not acknowledged): %v", arn, err)
		return
	}
	t.Logf("step: StopTask acknowledged %s", arn)
	h.tasks[arn].stopped = true
	h.fig.stopAcked++
}

// expectRunning lists the tasks that must be running, in the order they
// were acknowledged.
func (h *harness) expectRunning() []string {
	var out []string
	for _, arn := range h.order {
		if !h.tasks[arn].stopped {
			out = append(out, arn)
		}
	}
	return out
}

func (h *harness) pick(arns []string) string { return arns[h.rnd.IntN(len(arns))] }

// killFromHost sends SIGKILL to the task's container process, as `kill -9`
// by an operator or the OOM killer does.
func (h *harness) killFromHost(t *testing.T, arn string) {
	t.Helper()
	e := h.tasks[arn]
	if e.pid == 0 {
		t.Fatalf("no process known for task %s", arn)
	}
	if err := syscall.Kill(int(e.pid), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (task %s): %v", e.pid, arn, err)
	}
	t.Logf("step: killed %s's container (pid %d) from the host", arn, e.pid)
	e.stopped, e.hostKilled = true, true
	h.fig.hostKills++
}

// converge waits until every task the endpoint acknowledged shows the
// status it must reach (on the endpoint, which only learns it from the
// agent), then checks the invariants, and returns how long it took.
func (h *harness) converge(t *testing.T, after string) time.Duration {
	t.Helper()
	start := time.Now()
	ctx := context.Background()
	var tasks map[string]types.Task
	err := waitFor(ctx, 3*time.Minute, func(ctx context.Context) error {
		if err := h.connected(ctx); err != nil {
			return err
		}
		var err error
		if tasks, err = h.describe(ctx); err != nil {
			return err
		}
		for _, arn := range h.order {
			want := "RUNNING"
			if h.tasks[arn].stopped {
				want = "STOPPED"
			}
			tk := tasks[arn]
			last := aws.ToString(tk.LastStatus)
			if last == "STOPPED" && want == "RUNNING" {
				return nil // a violation: reported by check
			}
			if last != want {
				return fmt.Errorf("task %s is %s, want %s", arn, last, want)
			}
		}
		// The endpoint may show a task RUNNING from the killed agent's
		// report while the restarted one still recovers its network: the
		// recovery ends when every running task's host port answers.
		for _, arn := range h.order {
			if tk := tasks[arn]; !h.tasks[arn].stopped && aws.ToString(tk.LastStatus) == "RUNNING" {
				if port := testenv.FirstHostPort(tk); port != 0 {
					if body, err := testenv.GetLoopback(port); err != nil || body != page {
						return fmt.Errorf("task %s's host port %d answers %q, %v; want its page", arn, port, body, err)
					}
				}
			}
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("step: settled after %s in %s", after, took)
	if err != nil {
		h.violation(t, after, "did not settle: %v", err)
	}
	h.check(t, after, tasks)
	return took
}

func (h *harness) describe(ctx context.Context) (map[string]types.Task, error) {
	out := map[string]types.Task{}
	for i := 0; i < len(h.order); i += 100 {
		batch := h.order[i:min(i+100, len(h.order))]
		d, err := h.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: batch})
		if err != nil {
			return nil, err
		}
		for _, tk := range d.Tasks {
			out[aws.ToString(tk.TaskArn)] = tk
		}
	}
	return out, nil
}

func (h *harness) violation(t *testing.T, after, format string, args ...any) {
	t.Helper()
	h.fig.violations++
	t.Errorf("VIOLATION after %s: %s", after, fmt.Sprintf(format, args...))
}

// ctr is one container in the agent's containerd namespace.
type ctr struct {
	id, task, name string
	pid            uint32
	running        bool
}

func (h *harness) containers(t *testing.T) []ctr {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), h.ns), time.Minute)
	defer cancel()
	list, err := h.cli.Containers(ctx)
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	var out []ctr
	for _, c := range list {
		labels, err := c.Labels(ctx)
		if err != nil {
			t.Fatalf("labels of %s: %v", c.ID(), err)
		}
		x := ctr{id: c.ID(), task: labels[engine.LabelTaskARN], name: labels[engine.LabelContainerName]}
		if tk, err := c.Task(ctx, nil); err == nil {
			if st, err := tk.Status(ctx); err == nil && st.Status == containerd.Running {
				x.pid, x.running = tk.Pid(), true
			}
		}
		out = append(out, x)
	}
	return out
}

// check holds the invariants: each acknowledged task in the state it must
// be in, on the endpoint and in containerd; no container of no task, no
// task with two containers, no container running for a stopped task, the
// running container the same process as before the fault; host ports
// distinct, each answering with the task's page.
func (h *harness) check(t *testing.T, after string, tasks map[string]types.Task) {
	t.Helper()
	h.fig.checks++
	byTask := map[string][]ctr{}
	for _, c := range h.containers(t) {
		if _, ok := h.tasks[c.task]; !ok {
			h.violation(t, after, "orphan container %s (task %q): no acknowledged task has it", c.id, c.task)
			continue
		}
		byTask[c.task] = append(byTask[c.task], c)
	}
	ports := map[int32]string{}
	for _, arn := range h.order {
		e, tk, cs := h.tasks[arn], tasks[arn], byTask[arn]
		last := aws.ToString(tk.LastStatus)
		if len(cs) > 1 {
			h.violation(t, after, "task %s has %d containers: %+v", arn, len(cs), cs)
		}
		if e.stopped {
			if last != "STOPPED" {
				h.violation(t, after, "task %s is %s after its StopTask or its container's kill, want STOPPED", arn, last)
			}
			for _, c := range cs {
				if c.running {
					h.violation(t, after, "task %s is %s but its container %s still runs (pid %d)", arn, last, c.id, c.pid)
				}
			}
			if e.hostKilled && last == "STOPPED" && len(tk.Containers) == 1 && aws.ToInt32(tk.Containers[0].ExitCode) != 137 {
				h.violation(t, after, "task %s: container killed with SIGKILL reported exit code %v, want 137", arn, tk.Containers[0].ExitCode)
			}
			continue
		}
		if last != "RUNNING" {
			h.violation(t, after, "acknowledged task %s is %s (%s), want RUNNING", arn, last, aws.ToString(tk.StoppedReason))
			continue
		}
		if len(cs) != 1 || !cs[0].running {
			h.violation(t, after, "task %s is RUNNING but its container does not run: %+v", arn, cs)
			continue
		}
		if e.pid != 0 && e.pid != cs[0].pid {
			h.violation(t, after, "task %s's container is process %d, was %d: started again", arn, cs[0].pid, e.pid)
		}
		e.pid = cs[0].pid
		port := testenv.FirstHostPort(tk)
		if port == 0 {
			h.violation(t, after, "task %s is RUNNING with no host port", arn)
			continue
		}
		if other, ok := ports[port]; ok {
			h.violation(t, after, "tasks %s and %s have the same host port %d", other, arn, port)
		}
		ports[port] = arn
		e.port = port
		if body, err := testenv.GetLoopback(port); err != nil || body != page {
			h.violation(t, after, "task %s's host port %d answers %q, %v; want its page", arn, port, body, err)
		}
	}
}

// checkNothingLeft waits for the agent to clean up every stopped task,
// stops the agent, and then finds no container, active snapshot, lease,
// network namespace, veth or rule that was not there before the first task.
func (h *harness) checkNothingLeft(t *testing.T) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), h.ns)
	h.waitCleanedUp(t, "all stopped")
	// Before the agent stops: a system agent keeps its bridge and
	// agent-wide rules while it is stopped; the tasks' are what must go.
	if after := readHostState(t); !after.equal(h.baseline) {
		h.violation(t, "all stopped", "host state differs from before the first task:\n%s", h.baseline.diff(after))
	}
	h.agent.stop(t)
	var left []string
	err := h.cli.SnapshotService(h.containerd.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			left = append(left, "active snapshot "+info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk snapshots: %v", err)
	}
	leases, err := h.cli.LeasesService().List(ctx)
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for _, l := range leases {
		left = append(left, "lease "+l.ID)
	}
	for _, n := range listNetns() {
		left = append(left, "network namespace "+n)
	}
	sort.Strings(left)
	if len(left) > 0 {
		h.violation(t, "all stopped and the agent stopped", "left behind:\n%s", strings.Join(left, "\n"))
	}
}
