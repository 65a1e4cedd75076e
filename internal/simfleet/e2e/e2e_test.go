package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/state"
)

// TestMain serves the shim-started logger mode of the test binary (the
// agents in this process name it as their logger).
func TestMain(m *testing.M) { os.Exit(agentproc.Main(m, "", nil)) }

func logger() *slog.Logger {
	if os.Getenv("BERTH_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// realAgent is one berth agent in this process with its own data dir,
// containerd namespace, bridge, subnet, port range and zone.
type realAgent struct {
	zone, ns, prefix, bridge, subnet, dataDir, netDir string
	ports                                             uint16
	arn                                               string
	stop                                              func()
}

func startAgent(t *testing.T, env *simfleet.Env, cd *testenv.ContainerdInstance, zone string) *realAgent {
	t.Helper()
	id := fmt.Sprintf("%06x", mrand.IntN(1<<24))
	a := &realAgent{
		zone: zone, ns: cd.Namespace(t), prefix: "bs" + id + "-", bridge: "bs" + id,
		subnet:  fmt.Sprintf("10.%d.%d.0/24", 150+mrand.IntN(50), mrand.IntN(256)),
		dataDir: t.TempDir(), netDir: t.TempDir(), ports: uint16(30000 + mrand.IntN(100)*50),
	}
	keyID, secret, err := env.Endpoint.Keys().Create(auth.RoleAgent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	envVars := []string{
		"ECS_CLUSTER=" + env.Cluster,
		"ECS_BACKEND_HOST=" + env.URL,
		"AWS_REGION=" + simfleet.Region,
		"ECS_DATADIR=" + a.dataDir,
		"BERTH_CONTAINERD_ADDRESS=" + cd.Address,
		"BERTH_CONTAINERD_NAMESPACE=" + a.ns,
		"BERTH_BRIDGE_NAME=" + a.bridge,
		"BERTH_BRIDGE_SUBNET=" + a.subnet,
		fmt.Sprintf("ECS_DYNAMIC_HOST_PORT_RANGE=%d-%d", a.ports, a.ports+49),
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		`ECS_INSTANCE_ATTRIBUTES={"ecs.availability-zone":"` + zone + `"}`,
	}
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	cfg, _, err := config.Load(config.LoadOptions{Env: envVars, ReadFile: noFiles})
	if err != nil {
		t.Fatalf("agent config: %v", err)
	}
	cfg.Listen.Introspection = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Containers.TaskCleanupWait = time.Hour
	exe, _ := os.Executable()
	ids := make(chan string, 1)
	ag, err := agent.New(cfg, agent.WithLogger(logger()), agent.WithLoggerBinary(exe),
		agent.WithNetworkRunDir(a.netDir), agent.WithNamePrefix(a.prefix), agent.WithSnapshotter(cd.Snapshotter),
		agent.WithMembership(agent.Membership{
			Credentials:      credentials.NewStaticCredentialsProvider(keyID, secret, ""),
			HeartbeatTimeout: time.Minute, SubmitPoll: 50 * time.Millisecond,
			ReconnectBackoff: registration.Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2},
			Registered:       func(id state.InstanceIdentity) { ids <- id.ContainerInstanceArn },
		}))
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	agentproc.SweepNetwork(t, agentproc.AgentNetwork{DataDir: a.dataDir, RunDir: a.netDir, Prefix: a.prefix, Bridge: a.bridge, Subnet: a.subnet}) // runs after the agent stopped
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	stopped := false
	a.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agent %s: %v", zone, err)
		}
	}
	t.Cleanup(a.stop)
	select {
	case a.arn = <-ids:
	case err := <-done:
		t.Fatalf("agent %s stopped before registering: %v", zone, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("agent %s did not register within 60s", zone)
	}
	return a
}

type e2e struct {
	t      *testing.T
	env    *simfleet.Env
	ctx    context.Context
	agents []*realAgent
}

func (e *e2e) wait(what string, d time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s; last: %s", d, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *e2e) zoneOf(arn string) string {
	for _, a := range e.agents {
		if a.arn == arn {
			return a.zone
		}
	}
	return "?"
}

func (e *e2e) describe(arns []string) []types.Task {
	e.t.Helper()
	if len(arns) == 0 {
		return nil
	}
	out, err := e.env.Admin.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String(e.env.Cluster), Tasks: arns})
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Tasks
}

// serviceTasks returns the service's tasks the service wants running.
func (e *e2e) serviceTasks() []types.Task {
	e.t.Helper()
	lt, err := e.env.Admin.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String(e.env.Cluster), ServiceName: aws.String("web")})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.describe(lt.TaskArns)
}

func (e *e2e) zones(ts []types.Task) string {
	var zs []string
	for _, tk := range ts {
		zs = append(zs, e.zoneOf(aws.ToString(tk.ContainerInstanceArn)))
	}
	sort.Strings(zs)
	return strings.Join(zs, "")
}

// TestServicesOnThreeRealAgents runs three real agents (zones a, b, c) on
// real containerd against the endpoint and drives it with the AWS SDK: a
// 6-task service spreads 2/2/2, memberOf lands on zone b only,
// distinctInstance places 3 of 4, and killing one agent's containers is
// healed by the service.
func TestServicesOnThreeRealAgents(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip", "runc")
	cd := testenv.Containerd(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "scheduler-e2e/web", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte("hello\n")}},
		Cmd:   []string{"/bin/httpd", "-f", "-p", "80", "-h", "/srv"},
	})
	env := simfleet.NewEnv(t, simfleet.EnvOptions{Logger: logger(),
		Services: servicectl.Timing{Interval: 200 * time.Millisecond, HealthyAfter: time.Second}})
	e := &e2e{t: t, env: env, ctx: context.Background()}
	for _, z := range []string{"a", "b", "c"} {
		e.agents = append(e.agents, startAgent(t, env, cd, z))
	}
	// Registered last, so it runs first: stop every task through the API
	// while the agents still run, so they tear their networks down.
	t.Cleanup(e.stopEverything)
	e.wait("three connected agents", 30*time.Second, func() (bool, string) {
		out, err := env.Admin.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String(env.Cluster), Filter: aws.String("agentConnected == true")})
		if err != nil {
			return false, err.Error()
		}
		return len(out.ContainerInstanceArns) == 3, fmt.Sprint(out.ContainerInstanceArns)
	})
	if _, err := env.Admin.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("web"),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("web"), Image: aws.String(img.Ref), Memory: aws.Int32(32), Essential: aws.Bool(true),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0)}},
		}},
	}); err != nil {
		t.Fatal(err)
	}

	// A 6-task service spreads over the zones 2/2/2 (the services default).
	if _, err := env.Admin.CreateService(e.ctx, &ecs.CreateServiceInput{Cluster: aws.String(env.Cluster), ServiceName: aws.String("web"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(6)}); err != nil {
		t.Fatal(err)
	}
	e.wait("6 running service tasks", 120*time.Second, func() (bool, string) {
		ts := e.serviceTasks()
		running := 0
		for _, tk := range ts {
			if aws.ToString(tk.LastStatus) == "RUNNING" {
				running++
			}
		}
		return running == 6, fmt.Sprintf("%d of %d running, zones %s", running, len(ts), e.zones(ts))
	})
	if got := e.zones(e.serviceTasks()); got != "aabbcc" {
		t.Fatalf("service tasks per zone %q, want aabbcc", got)
	}

	// memberOf(zone b) lands only on b.
	run, err := env.Admin.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String(env.Cluster), TaskDefinition: aws.String("web"), Count: aws.Int32(2),
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == b")}}})
	if err != nil || len(run.Tasks) != 2 || e.zones(run.Tasks) != "bb" {
		t.Fatalf("RunTask memberOf zone b: %v, %d tasks in zones %q", err, len(run.Tasks), e.zones(run.Tasks))
	}
	// distinctInstance with 4 tasks places 3 and reports the fourth.
	run, err = env.Admin.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String(env.Cluster), TaskDefinition: aws.String("web"), Count: aws.Int32(4),
		Group: aws.String("spread-out"), PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeDistinctInstance}}})
	if err != nil || len(run.Tasks) != 3 || e.zones(run.Tasks) != "abc" || len(run.Failures) == 0 {
		t.Fatalf("RunTask distinctInstance x4: %v, zones %q, failures %+v", err, e.zones(run.Tasks), run.Failures)
	}
	for _, f := range run.Failures {
		if aws.ToString(f.Reason) != "DistinctInstance placement constraint unsatisfied." {
			t.Errorf("distinctInstance failure reason %q", aws.ToString(f.Reason))
		}
	}

	// Kill zone a's containers behind the agent's back: the agent reports
	// the exits and the service starts replacements.
	a := e.agents[0]
	var killed []string
	for _, tk := range e.serviceTasks() {
		if aws.ToString(tk.ContainerInstanceArn) == a.arn {
			killed = append(killed, aws.ToString(tk.TaskArn))
		}
	}
	cli := cd.Client(t)
	kctx := testenv.Context(t, a.ns)
	cs, err := cli.Containers(kctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cs {
		task, err := c.Task(kctx, nil)
		if err != nil {
			continue
		}
		if err := task.Kill(kctx, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", c.ID(), err)
		}
		n++
	}
	if n == 0 || len(killed) != 2 {
		t.Fatalf("killed %d containers of zone a, which had %d service tasks; want some and 2", n, len(killed))
	}
	e.wait("the service to heal", 120*time.Second, func() (bool, string) {
		ts := e.serviceTasks()
		running := 0
		for _, tk := range ts {
			for _, k := range killed {
				if aws.ToString(tk.TaskArn) == k {
					return false, "killed task still wanted: " + k
				}
			}
			if aws.ToString(tk.LastStatus) == "RUNNING" {
				running++
			}
		}
		return running == 6, fmt.Sprintf("%d of %d running, zones %s", running, len(ts), e.zones(ts))
	})
	for _, k := range e.describe(killed) {
		if aws.ToString(k.LastStatus) != "STOPPED" {
			t.Errorf("killed task %s is %s", aws.ToString(k.TaskArn), aws.ToString(k.LastStatus))
		}
	}
}

// stopEverything deletes the service and stops every task, then waits for
// the agents to report them STOPPED.
func (e *e2e) stopEverything() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	admin, cluster := e.env.Admin, aws.String(e.env.Cluster)
	_, _ = admin.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: cluster, Service: aws.String("web"), Force: aws.Bool(true)})
	for ctx.Err() == nil {
		list, err := admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster})
		if err != nil {
			return
		}
		for _, arn := range list.TaskArns {
			_, _ = admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: cluster, Task: aws.String(arn)})
		}
		// Wait until no task of the cluster is short of STOPPED.
		pending := 0
		for _, ds := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			l, err := admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: cluster, DesiredStatus: ds})
			if err != nil || len(l.TaskArns) == 0 {
				continue
			}
			d, err := admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: cluster, Tasks: l.TaskArns})
			if err != nil {
				continue
			}
			for _, tk := range d.Tasks {
				if aws.ToString(tk.LastStatus) != "STOPPED" {
					pending++
				}
			}
		}
		if pending == 0 {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}
