package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/state"
)

// agentChildEnv makes the test binary run as a berth agent: the agent of
// cmd/agent (config.Load of an ecs.config file, agent.New with WithMembership, Run with
// the production session timings), plus the three options the binary has
// no setting for and a test needs to keep to its own slice of the host.
// Its value is a JSON agentChild.
const agentChildEnv = "BERTH_CLUSTER_TEST_AGENT"

// agentChild is what a child agent reads besides its ecs.config.
type agentChild struct {
	ConfigFile, TOMLFile           string
	Snapshotter, NetRunDir, Prefix string
}

func runAgentChild(raw string) int {
	var s agentChild
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintln(os.Stderr, "agent child spec:", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	cfg, problems, err := config.Load(config.LoadOptions{ConfigPath: s.ConfigFile, ConfigPathSet: true, TOMLPath: s.TOMLFile, TOMLPathSet: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent config:", err, problems)
		return 5
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := agent.New(cfg, agent.WithLogger(log),
		agent.WithSnapshotter(s.Snapshotter), agent.WithNetworkRunDir(s.NetRunDir), agent.WithNamePrefix(s.Prefix),
		agent.WithMembership(agent.Membership{
			Registered: func(id state.InstanceIdentity) { fmt.Println("REGISTERED " + id.ContainerInstanceArn) }}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	err = a.Run(ctx)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}

// realAgent is one child agent on the test's containerd, in its own
// namespace, data directory, bridge, subnet and port range.
type realAgent struct {
	name, ns, dataDir, arn string
	child                  *agentproc.Child
}

// startRealAgent runs an agent whose ECS_BACKEND_HOST lists the replicas
// in the order given, with task roles on, and returns it once registered.
func startRealAgent(t *testing.T, set *replicaSet, cd *testenv.ContainerdInstance, name string, order []*replicaProc) *realAgent {
	t.Helper()
	keyID, secret, err := set.newKey("agent")
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%06x", mrand.IntN(1<<24))
	a := &realAgent{name: name, ns: cd.Namespace(t), dataDir: t.TempDir()}
	netDir, prefix, bridge := t.TempDir(), "br"+id+"-", "br"+id
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+mrand.IntN(50), mrand.IntN(256))
	ports := 32000 + mrand.IntN(100)*50
	var urls []string
	for _, r := range order {
		urls = append(urls, r.url())
	}
	ecsConfig := strings.Join([]string{
		"ECS_CLUSTER=agents",
		"ECS_BACKEND_HOST=" + strings.Join(urls, ","),
		"AWS_REGION=us-test-1",
		"AWS_ACCESS_KEY_ID=" + keyID,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"ECS_DATADIR=" + a.dataDir,
		"BERTH_CONTAINERD_ADDRESS=" + cd.Address,
		"BERTH_CONTAINERD_NAMESPACE=" + a.ns,
		"BERTH_BRIDGE_NAME=" + bridge,
		"BERTH_BRIDGE_SUBNET=" + subnet,
		fmt.Sprintf("ECS_DYNAMIC_HOST_PORT_RANGE=%d-%d", ports, ports+49),
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		`ECS_INSTANCE_ATTRIBUTES={"agent":"` + name + `"}`,
		"ECS_ENABLE_TASK_IAM_ROLE=true",
		"ECS_AUDIT_LOGFILE=" + filepath.Join(a.dataDir, "audit.log"),
		"BERTH_INTROSPECTION_ADDRESS=" + freePort(t),
		"BERTH_CREDENTIALS_ADDRESS=" + freePort(t),
	}, "\n") + "\n"
	spec := agentChild{ConfigFile: filepath.Join(a.dataDir, "ecs.config"), TOMLFile: filepath.Join(a.dataDir, "agent.toml"),
		Snapshotter: cd.Snapshotter, NetRunDir: netDir, Prefix: prefix}
	if err := os.WriteFile(spec.ConfigFile, []byte(ecsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.TOMLFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered before the child, so it runs after the child stopped.
	agentproc.SweepNetwork(t, agentproc.AgentNetwork{DataDir: a.dataDir, RunDir: netDir, Prefix: prefix, Bridge: bridge, Subnet: subnet})
	a.child = agentproc.Start(t, agentChildEnv, spec)
	select {
	case line, ok := <-a.child.Lines:
		if !ok || !strings.HasPrefix(line, "REGISTERED ") {
			t.Fatalf("agent %s did not register (%q):\n%s", name, line, a.child.Log())
		}
		a.arn = strings.TrimPrefix(line, "REGISTERED ")
	case <-time.After(60 * time.Second):
		t.Fatalf("agent %s did not register within 60s:\n%s", name, a.child.Log())
	}
	return a
}

// agentContainer is one container in an agent's containerd namespace.
type agentContainer struct {
	id, taskArn string
	running     bool // its process runs
}

// containers lists the containers in the agent's containerd namespace.
func (a *realAgent) containers(t *testing.T, cli *containerd.Client) []agentContainer {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), a.ns), 10*time.Second)
	defer cancel()
	cs, err := cli.Containers(ctx)
	if err != nil {
		t.Fatalf("list containers of agent %s: %v", a.name, err)
	}
	var out []agentContainer
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			t.Fatalf("labels of container %s: %v", c.ID(), err)
		}
		ac := agentContainer{id: c.ID(), taskArn: labels[engine.LabelTaskARN]}
		if task, err := c.Task(ctx, nil); err == nil {
			st, err := task.Status(ctx)
			ac.running = err == nil && st.Status == containerd.Running
		}
		out = append(out, ac)
	}
	return out
}

// running returns the task ARN of every container with a running process
// in the agent's containerd namespace, once per such container.
func (a *realAgent) running(t *testing.T, cli *containerd.Client) []string {
	t.Helper()
	var out []string
	for _, c := range a.containers(t, cli) {
		if c.running {
			out = append(out, c.taskArn)
		}
	}
	return out
}

// logOf returns the json-file log of the task's (single) container.
func (a *realAgent) logOf(t *testing.T, cli *containerd.Client, taskArn string) string {
	t.Helper()
	var ids []string
	for _, c := range a.containers(t, cli) {
		if c.taskArn == taskArn {
			ids = append(ids, c.id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("the containers of %s on agent %s: %v, want one", taskArn, a.name, ids)
	}
	b, _ := os.ReadFile(runtime.LogPath(filepath.Join(a.dataDir, "logs"), ids[0]))
	return string(b)
}

// expirationRE finds the Expiration of credentials served to a container,
// as its json-file log holds them (quotes escaped).
var expirationRE = regexp.MustCompile(`\\"Expiration\\":\\"([^\\"]+)\\"`)

// TestReplicaProcessesRealAgents runs three `berth-cluster serve` replicas
// on three etcd members with two real agents on containerd, whose
// ECS_BACKEND_HOST lists the replicas in different orders (a: r0 r1 r2,
// b: r1 r2 r0; r0 leads):
//   - a 5-task busybox httpd service (hostPort 0) runs; SDK calls
//     round-robin over the replicas all answer the same, and what they say
//     runs is what runs in containerd, on the instance they name;
//   - the leader r0 is killed with SIGKILL during a rolling deployment to
//     a new revision: r1 or r2 leads, the deployment completes with exactly
//     5 new tasks running once each and the 5 old ones STOPPED, nothing
//     running in containerd that the endpoint does not list; agent a's
//     session moves to r1 and a task placed afterwards through r2 starts
//     and stops on it;
//   - a task with a task role on agent a keeps getting its credentials
//     from 169.254.170.2 after the move, and receives credentials issued
//     after r0 died (the new replica's refresh).
func TestReplicaProcessesRealAgents(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip", "runc")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // bounds every SDK call
	defer cancel()
	cd := testenv.Containerd(t)
	cli := cd.Client(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "replicas/web", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte("hello from a replica's agent\n")}},
		Cmd:   []string{"/bin/httpd", "-f", "-p", "80", "-h", "/srv"},
	})
	const roleArn = "arn:aws:iam::123456789012:role/probe"
	etcd := testenv.Etcd(t, 3)
	// Credentials last 1 minute, the least allowed: the replica that holds
	// the session refreshes them every 30 s.
	set := newReplicaSet(t, etcd, "/berth/agents/", fmt.Sprintf(`
[[roles]]
arn = %q
source = "static"
access_key_id = "AKIAREPLICAPROBE0001"
secret_access_key = "replica-probe-secret"
duration = "1m"
`, roleArn))
	r0, r1, r2 := set.reps[0], set.reps[1], set.reps[2]
	set.start(t, r0)
	waitFor(t, 20*time.Second, "r0 leading", r0.leads)
	set.start(t, r1)
	set.start(t, r2)
	cl := aws.String("agents")
	if _, err := set.client(r0).CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: cl}); err != nil {
		t.Fatal(err)
	}
	for rev := range 2 {
		if _, err := set.client(set.reps[rev]).RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("web"), Image: aws.String(img.Ref), Memory: aws.Int32(32),
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0)}},
				Environment:  []types.KeyValuePair{{Name: aws.String("REV"), Value: aws.String(fmt.Sprint(rev + 1))}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	loop := `while true; do wget -q -O - http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI 2>&1; echo; sleep 0.5; done`
	if _, err := set.client(r2).RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("probe"), TaskRoleArn: aws.String(roleArn),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("probe"), Image: aws.String(img.Ref), Memory: aws.Int32(32),
			Command: []string{"/bin/sh", "-c", loop}}}}); err != nil {
		t.Fatal(err)
	}
	agents := []*realAgent{
		startRealAgent(t, set, cd, "a", []*replicaProc{r0, r1, r2}),
		startRealAgent(t, set, cd, "b", []*replicaProc{r1, r2, r0}),
	}
	a := agents[0]
	// Registered after the agents, so it runs while they still run: every
	// task stopped through the API, so they tear their networks down.
	t.Cleanup(func() { stopAllTasks(set) })

	// onAgents is every task running in containerd, as "task instance".
	onAgents := func() []string {
		var out []string
		for _, ag := range agents {
			for _, arn := range ag.running(t, cli) {
				out = append(out, arn+" "+ag.arn)
			}
		}
		sort.Strings(out)
		return out
	}
	// endpointRunning is every task the endpoint has RUNNING, as
	// "task instance", through one replica.
	endpointRunning := func(c *ecs.Client) ([]string, error) {
		tasks, err := allTasks(ctx, c, types.DesiredStatusRunning, "")
		if err != nil {
			return nil, err
		}
		var out []string
		for _, tk := range tasks {
			if aws.ToString(tk.LastStatus) == "RUNNING" {
				out = append(out, aws.ToString(tk.TaskArn)+" "+aws.ToString(tk.ContainerInstanceArn))
			}
		}
		sort.Strings(out)
		return out, nil
	}
	service := func() *types.Service {
		out, err := set.live()[0].DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: cl, Services: []string{"web"}})
		if err != nil || len(out.Services) != 1 {
			return nil
		}
		return &out.Services[0]
	}
	waitFor(t, 30*time.Second, "both agents connected", func() bool {
		d, err := set.client(r2).DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: cl, ContainerInstances: []string{agents[0].arn, agents[1].arn}})
		return err == nil && len(d.ContainerInstances) == 2 && d.ContainerInstances[0].AgentConnected && d.ContainerInstances[1].AgentConnected
	})

	var probe string
	t.Run("SameStateThroughEveryReplica", func(t *testing.T) {
		if _, err := set.client(r2).CreateService(ctx, &ecs.CreateServiceInput{Cluster: cl, ServiceName: aws.String("web"),
			TaskDefinition: aws.String("web:1"), DesiredCount: aws.Int32(5),
			DeploymentConfiguration: &types.DeploymentConfiguration{MaximumPercent: aws.Int32(140), MinimumHealthyPercent: aws.Int32(100)}}); err != nil {
			t.Fatal(err)
		}
		out, err := set.client(r1).RunTask(ctx, &ecs.RunTaskInput{Cluster: cl, TaskDefinition: aws.String("probe"),
			PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:agent == a")}}})
		if err != nil || len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].ContainerInstanceArn) != a.arn {
			t.Fatalf("RunTask probe on agent a: %v", err)
		}
		probe = aws.ToString(out.Tasks[0].TaskArn)
		var last string
		waitFor(t, 90*time.Second, "5 service tasks and the probe RUNNING in the endpoint and in containerd", func() bool {
			s, got := service(), onAgents()
			ep, err := endpointRunning(set.client(r0))
			last = fmt.Sprintf("endpoint %v, containerd %v, %v", ep, got, err)
			return s != nil && s.RunningCount == 5 && len(got) == 6 && fmt.Sprint(ep) == fmt.Sprint(got)
		})
		t.Logf("running: %s", last)
		// Round robin: the same questions through every replica, twice.
		var views []string
		for i := range 6 {
			c := set.client(set.reps[i%3])
			view, err := clusterView(ctx, c)
			if err != nil {
				t.Fatalf("through %s: %v", set.reps[i%3].name, err)
			}
			views = append(views, view)
		}
		for i, v := range views {
			if v != views[0] {
				t.Errorf("%s answers\n%s\n%s answered\n%s", set.reps[i%3].name, v, set.reps[0].name, views[0])
			}
		}
		if log := a.logOf(t, cli, probe); !strings.Contains(log, `\"AccessKeyId\":\"AKIAREPLICAPROBE0001\"`) {
			waitFor(t, 20*time.Second, "the probe served its role's credentials", func() bool {
				return strings.Contains(a.logOf(t, cli, probe), `\"AccessKeyId\":\"AKIAREPLICAPROBE0001\"`)
			})
		}
	})
	if probe == "" {
		t.FailNow()
	}

	var killed time.Time
	t.Run("LeaderKilledDuringDeployment", func(t *testing.T) {
		if !r0.leads() {
			t.Fatal("r0 does not lead")
		}
		oldTasks := onAgents()
		if _, err := set.client(r1).UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: cl, Service: aws.String("web"), TaskDefinition: aws.String("web:2")}); err != nil {
			t.Fatal(err)
		}
		// Kill the leader once new tasks run and old ones still do.
		waitFor(t, 30*time.Second, "the rolling deployment under way", func() bool { return len(onAgents()) > len(oldTasks) })
		still := len(intersect(onAgents(), oldTasks))
		if still <= 1 { // the probe is not part of the deployment
			t.Fatal("the deployment ended before the leader could be killed")
		}
		r0.kill9(t)
		killed = time.Now()
		t.Logf("killed the leader r0 with SIGKILL, %d old service tasks still running", still-1)
		waitFor(t, 20*time.Second, "r1 or r2 leading", func() bool { return r1.leads() || r2.leads() })
		t.Logf("another replica leads %v after the kill", time.Since(killed).Round(100*time.Millisecond))
		var last string
		waitFor(t, 90*time.Second, "the deployment complete: one deployment of web:2, 5 running, in containerd too", func() bool {
			s, got := service(), onAgents()
			ep, err := endpointRunning(set.client(r1))
			last = fmt.Sprintf("endpoint %v, containerd %v, %v", ep, got, err)
			return s != nil && len(s.Deployments) == 1 && strings.HasSuffix(aws.ToString(s.Deployments[0].TaskDefinition), ":2") &&
				s.RunningCount == 5 && len(got) == 6 && len(intersect(got, oldTasks)) == 1 && fmt.Sprint(ep) == fmt.Sprint(got)
		})
		t.Logf("deployment complete %v after the kill: %s", time.Since(killed).Round(100*time.Millisecond), last)
		// Every task the service ever had: the 5 of web:2 running once each
		// where the endpoint says, the 5 of web:1 STOPPED (their agents'
		// reports arrived), none left running in containerd.
		var all []types.Task
		for _, st := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			ts, err := allTasks(ctx, set.client(r2), st, "web")
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ts...)
		}
		got := onAgents()
		var new2, old1 int
		for _, tk := range all {
			arn, where := aws.ToString(tk.TaskArn), aws.ToString(tk.TaskArn)+" "+aws.ToString(tk.ContainerInstanceArn)
			switch {
			case strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":2"):
				new2++
				if aws.ToString(tk.LastStatus) != "RUNNING" || !slices.Contains(got, where) {
					t.Errorf("web:2 task %s is %s; running in containerd: %v", arn, aws.ToString(tk.LastStatus), got)
				}
				if body, err := getHostPort(ctx, tk); err != nil || body != "hello from a replica's agent\n" {
					t.Errorf("web:2 task %s answers %q, %v", arn, body, err)
				}
			default:
				old1++
				if aws.ToString(tk.LastStatus) != "STOPPED" || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, arn+" ") }) {
					t.Errorf("web:1 task %s is %s; running in containerd: %v", arn, aws.ToString(tk.LastStatus), got)
				}
			}
		}
		if new2 != 5 || old1 != 5 {
			t.Errorf("the service has %d web:2 and %d web:1 tasks; want 5 and 5 (none placed twice by two leaders)", new2, old1)
		}
		// Agent a's session moved from r0 to the next replica in its list.
		waitFor(t, 20*time.Second, "agent a's ACS session open on r1", func() bool {
			for _, l := range strings.Split(r1.log(), "\n") {
				if strings.Contains(l, "ACS session open") && strings.Contains(l, a.arn) {
					return true
				}
			}
			return false
		})
		waitFor(t, 20*time.Second, "both agents connected", func() bool {
			d, err := set.client(r2).DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: cl, ContainerInstances: []string{agents[0].arn, agents[1].arn}})
			return err == nil && len(d.ContainerInstances) == 2 && d.ContainerInstances[0].AgentConnected && d.ContainerInstances[1].AgentConnected
		})
		// A task placed through r2 (which holds no session) reaches a on r1,
		// runs, and its STOPPED report arrives.
		out, err := set.client(r2).RunTask(ctx, &ecs.RunTaskInput{Cluster: cl, TaskDefinition: aws.String("web:2"),
			PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:agent == a")}}})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("RunTask on agent a after the move: %v", err)
		}
		arn := aws.ToString(out.Tasks[0].TaskArn)
		waitFor(t, 30*time.Second, "the new task RUNNING on agent a and in the endpoint", func() bool {
			ep, _ := endpointRunning(set.client(r2))
			return slices.Contains(a.running(t, cli), arn) && slices.Contains(ep, arn+" "+a.arn)
		})
		if _, err := set.client(r2).StopTask(ctx, &ecs.StopTaskInput{Cluster: cl, Task: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the new task STOPPED on agent a and in the endpoint", func() bool {
			d, err := set.client(r1).DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: cl, Tasks: []string{arn}})
			return !slices.Contains(a.running(t, cli), arn) && err == nil && len(d.Tasks) == 1 && aws.ToString(d.Tasks[0].LastStatus) == "STOPPED"
		})
	})
	if killed.IsZero() {
		t.FailNow()
	}

	t.Run("CredentialsAfterTheMove", func(t *testing.T) {
		// Credentials last a minute from issue, so an Expiration more than a
		// minute after the kill was issued by a replica that still runs.
		var exps []string
		waitFor(t, 60*time.Second, "credentials issued after r0 died served to the probe", func() bool {
			exps = exps[:0]
			for _, m := range expirationRE.FindAllStringSubmatch(a.logOf(t, cli, probe), -1) {
				if !slices.Contains(exps, m[1]) {
					exps = append(exps, m[1])
				}
				if e, err := time.Parse(time.RFC3339, m[1]); err == nil && e.Add(-time.Minute).After(killed.Add(time.Second)) {
					return true
				}
			}
			return false
		})
		t.Logf("%v after the kill the probe holds credentials issued after it (expirations seen: %v)", time.Since(killed).Round(100*time.Millisecond), exps)
		log := a.logOf(t, cli, probe)
		if strings.Contains(log, "wget:") {
			t.Errorf("the probe failed to get its credentials at times:\n%s", log[max(0, len(log)-3000):])
		}
	})
}

// clusterView is what one replica says of the cluster: its tasks and their
// statuses, its service's counts and deployments, its instances' remaining
// resources and connection; all sorted, so that replicas compare as text.
func clusterView(ctx context.Context, c *ecs.Client) (string, error) {
	var lines []string
	tasks, err := allTasks(ctx, c, types.DesiredStatusRunning, "")
	if err != nil {
		return "", err
	}
	for _, tk := range tasks {
		lines = append(lines, fmt.Sprintf("task %s %s %s %s", aws.ToString(tk.TaskArn), aws.ToString(tk.TaskDefinitionArn),
			aws.ToString(tk.LastStatus), aws.ToString(tk.ContainerInstanceArn)))
	}
	s, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("agents"), Services: []string{"web"}})
	if err != nil {
		return "", err
	}
	for _, sv := range s.Services {
		lines = append(lines, fmt.Sprintf("service %s desired %d running %d pending %d deployments %d", aws.ToString(sv.ServiceName),
			sv.DesiredCount, sv.RunningCount, sv.PendingCount, len(sv.Deployments)))
	}
	ci, err := c.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("agents")})
	if err != nil {
		return "", err
	}
	d, err := c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("agents"), ContainerInstances: ci.ContainerInstanceArns})
	if err != nil {
		return "", err
	}
	for _, in := range d.ContainerInstances {
		var rem []string
		for _, r := range in.RemainingResources {
			ports := slices.Clone(r.StringSetValue)
			sort.Strings(ports)
			rem = append(rem, fmt.Sprintf("%s=%d%v", aws.ToString(r.Name), r.IntegerValue, ports))
		}
		sort.Strings(rem)
		lines = append(lines, fmt.Sprintf("instance %s connected %v running %d %v", aws.ToString(in.ContainerInstanceArn),
			in.AgentConnected, in.RunningTasksCount, rem))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

// allTasks lists and describes the cluster's tasks of one desired status
// (of one service when service is set).
func allTasks(ctx context.Context, c *ecs.Client, desired types.DesiredStatus, service string) ([]types.Task, error) {
	in := &ecs.ListTasksInput{Cluster: aws.String("agents"), DesiredStatus: desired}
	if service != "" {
		in.ServiceName = aws.String(service)
	}
	lt, err := c.ListTasks(ctx, in)
	if err != nil {
		return nil, err
	}
	var out []types.Task
	for i := 0; i < len(lt.TaskArns); i += 100 {
		dt, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("agents"), Tasks: lt.TaskArns[i:min(i+100, len(lt.TaskArns))]})
		if err != nil {
			return nil, err
		}
		out = append(out, dt.Tasks...)
	}
	return out, nil
}

// getHostPort fetches / from the task's first network binding.
func getHostPort(ctx context.Context, tk types.Task) (string, error) {
	for _, c := range tk.Containers {
		for _, nb := range c.NetworkBindings {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", aws.ToInt32(nb.HostPort)), nil)
			if err != nil {
				return "", err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return string(b), err
		}
	}
	return "", fmt.Errorf("task %s has no network binding", aws.ToString(tk.TaskArn))
}

// stopAllTasks deletes the service and stops every task of the cluster
// through the live replicas, then waits (at most a minute) until the
// agents reported them all STOPPED.
func stopAllTasks(set *replicaSet) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live := set.live()
	if len(live) == 0 {
		return
	}
	c, cluster := live[0], "agents"
	_, _ = c.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: aws.String(cluster), Service: aws.String("web"), Force: aws.Bool(true)})
	for ctx.Err() == nil {
		pending := 0
		for _, ds := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			tasks, err := allTasks(ctx, c, ds, "")
			if err != nil {
				break
			}
			for _, tk := range tasks {
				if aws.ToString(tk.LastStatus) != "STOPPED" {
					pending++
					if ds == types.DesiredStatusRunning {
						_, _ = c.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(cluster), Task: tk.TaskArn})
					}
				}
			}
		}
		if pending == 0 {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}
