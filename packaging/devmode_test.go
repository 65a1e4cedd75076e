package packaging

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/berth-dev/berth/internal/testenv"
)

// devHost is the test's private slice of the host for the installed agent.
type devHost struct {
	dir    string
	intro  string // the agent's introspection address
	env    []string
	ns     string
	bridge string
	subnet string // its first three octets and a dot: "10.150.7."
	cli    *containerd.Client
}

// newDevHost gives the installed agent its own containerd namespace,
// bridge, subnet and loopback ports, so it shares nothing with other tests.
func newDevHost(t *testing.T) *devHost {
	t.Helper()
	cd := testenv.Containerd(t)
	reg := testenv.Registry(t)
	h := &devHost{dir: t.TempDir(), ns: cd.Namespace(t), cli: cd.Client(t)}
	h.bridge = fmt.Sprintf("bpk%06x", rand.IntN(1<<24))
	h.subnet = fmt.Sprintf("10.%d.%d.", 150+rand.IntN(50), rand.IntN(256))
	h.intro = testenv.FreeLoopbackAddr(t)
	h.env = []string{
		"BERTH_CONTAINERD_ADDRESS=" + cd.Address,
		"BERTH_CONTAINERD_NAMESPACE=" + h.ns,
		"BERTH_INSECURE_REGISTRIES=[\"" + reg.Host + "\"]",
		"BERTH_BRIDGE_NAME=" + h.bridge,
		"BERTH_BRIDGE_SUBNET=" + h.subnet + "0/24",
		"BERTH_INTROSPECTION_ADDRESS=" + h.intro,
		"BERTH_CREDENTIALS_ADDRESS=" + testenv.FreeLoopbackAddr(t),
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		// Asks for the 169.254.170.2 route, whose rules must go on SIGTERM.
		"ECS_ENABLE_TASK_IAM_ROLE=true",
	}
	t.Cleanup(func() {
		// The bridge outlives the agent by design; this test made it.
		_ = exec.Command("ip", "link", "del", h.bridge).Run()
	})
	return h
}

// logMarker is what the task's container prints first.
const logMarker = "berth-packaged-logger-ok"

// waitLog polls the introspection API for the task's container output.
func (h *devHost) waitLog(t *testing.T, taskARN string, a *testenv.AgentProcess) {
	t.Helper()
	id := taskARN[strings.LastIndex(taskARN, "/")+1:]
	url := "http://" + h.intro + "/v1/tasks/" + id + "/containers/sleeper/logs"
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s: %s", resp.Status, body)
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), logMarker) {
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s never showed %q; last answer: %s\n%s", url, logMarker, last, a.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// credentialsRules lists the iptables rules of this agent's credentials
// route, found by the comment pkg/network tags them with.
func (h *devHost) credentialsRules(t *testing.T) []string {
	t.Helper()
	out := mustRun(t, "", nil, "iptables-save")
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "berth:creds:"+h.bridge) {
			rules = append(rules, line)
		}
	}
	return rules
}

// run starts /usr/bin/berth-agent with args, the host's environment and
// env. The process is killed at the end of the test if it is still
// running.
func (h *devHost) run(t *testing.T, env []string, args ...string) *testenv.AgentProcess {
	t.Helper()
	return testenv.StartAgent(t, "/usr/bin/berth-agent", append(slices.Clone(h.env), env...), args...)
}

// start runs /usr/bin/berth-agent --dev and waits for it to serve with
// its instance connected; the client is built from the exports it wrote,
// as a user sourcing the file would.
func (h *devHost) start(t *testing.T) (*testenv.AgentProcess, *ecs.Client) {
	t.Helper()
	a, env := testenv.StartDevMode(t, "/usr/bin/berth-agent", h.dir, h.env)
	return a, env.ECS(t)
}

// waitTask polls DescribeTasks until the task reports want.
func waitTask(t *testing.T, client *ecs.Client, arn, want string, a *testenv.AgentProcess) types.Task {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for {
		out, err := client.DescribeTasks(t.Context(), &ecs.DescribeTasksInput{Cluster: aws.String("default"), Tasks: []string{arn}})
		if err == nil && len(out.Tasks) == 1 {
			last = aws.ToString(out.Tasks[0].LastStatus)
			if last == want {
				return out.Tasks[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %q (err %v), want %s within 2 minutes\n%s", arn, last, err, want, a.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runningContainers counts the container processes running in ns.
func runningContainers(t *testing.T, cli *containerd.Client, ns string) int {
	t.Helper()
	ctx := namespaces.WithNamespace(t.Context(), ns)
	list, err := cli.Containers(ctx)
	if err != nil {
		t.Fatalf("list containers in %s: %v", ns, err)
	}
	n := 0
	for _, c := range list {
		task, err := c.Task(ctx, nil)
		if err != nil {
			continue
		}
		if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
			n++
		}
	}
	return n
}

// checkDevModeTask runs the installed agent in dev mode until a task runs,
// stops it with SIGTERM while the task runs (exit 0, the container keeps
// running), starts it again (the task is adopted and still RUNNING), then
// stops the task through the endpoint and the agent with SIGTERM, which
// leaves no iptables or nftables rule of its bridge or subnet. The
// container instance's versionInfo and /v1/metadata carry version.
func checkDevModeTask(t *testing.T, version string) {
	testenv.RequireBusyboxStatic(t)
	h := newDevHost(t)
	img := testenv.BuildImage(t, testenv.Registry(t), "packaging/sleeper", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", "echo " + logMarker + "; exec sleep 3600"},
	})

	agent, client := h.start(t)
	checkDevModeVersion(t, h, client, version)
	td, err := client.RegisterTaskDefinition(t.Context(), &ecs.RegisterTaskDefinitionInput{
		Family:      aws.String("packaging-sleeper"),
		NetworkMode: types.NetworkModeBridge,
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("sleeper"), Image: aws.String(img.Ref), Memory: aws.Int32(32), Essential: aws.Bool(true),
		}},
	})
	if err != nil {
		t.Fatalf("register task definition: %v", err)
	}
	run, err := client.RunTask(t.Context(), &ecs.RunTaskInput{
		Cluster: aws.String("default"), TaskDefinition: td.TaskDefinition.TaskDefinitionArn,
	})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("run task: %v (failures %+v)\n%s", err, run, agent.Output())
	}
	arn := aws.ToString(run.Tasks[0].TaskArn)
	waitTask(t, client, arn, "RUNNING", agent)
	if n := runningContainers(t, h.cli, h.ns); n != 1 {
		t.Fatalf("%d containers running in %s while the task runs, want 1", n, h.ns)
	}
	// The container's output goes through the log daemon, which the agent
	// runs as the installed berth-logd (its own small program); the
	// capture must reach the introspection API.
	h.waitLog(t, arn, agent)
	daemons, err := testenv.FindProcs(func(a []string) bool {
		return len(a) > 2 && a[0] == "/usr/bin/berth-logd" && a[1] == "log-daemon" && a[2] == "run"
	})
	if err != nil || len(daemons) == 0 {
		t.Fatalf("no /usr/bin/berth-logd log daemon runs while the task's log is captured (%v)\n%s", err, agent.Output())
	}

	routed := h.credentialsRules(t)
	if code := agent.Stop(t); code != 0 {
		t.Fatalf("berth-agent exited %d on SIGTERM, want 0\n%s", code, agent.Output())
	}
	if n := runningContainers(t, h.cli, h.ns); n != 1 {
		t.Fatalf("%d containers running after the agent stopped, want the task's 1 left running", n)
	}
	// The credentials route exists only once pkg/agent installs it; whether
	// it did or not, none of its rules may outlive the agent.
	t.Logf("credentials route rules while the agent ran: %q", routed)
	if left := h.credentialsRules(t); len(left) > 0 {
		t.Errorf("iptables rules of the agent left after SIGTERM: %q", left)
	}

	agent, client = h.start(t)
	task := waitTask(t, client, arn, "RUNNING", agent)
	if n := runningContainers(t, h.cli, h.ns); n != 1 {
		t.Errorf("%d containers running after the restart, want the adopted 1", n)
	}
	if _, err := client.StopTask(t.Context(), &ecs.StopTaskInput{Cluster: aws.String("default"), Task: task.TaskArn}); err != nil {
		t.Fatalf("stop task: %v", err)
	}
	waitTask(t, client, arn, "STOPPED", agent)
	if n := runningContainers(t, h.cli, h.ns); n != 0 {
		t.Errorf("%d containers running after the task stopped, want 0", n)
	}
	if code := agent.Stop(t); code != 0 {
		t.Errorf("berth-agent exited %d on SIGTERM, want 0\n%s", code, agent.Output())
	}
	// With no task left, dev mode removes its network's host-wide parts
	// (the built-in datapath's nftables table, named after an owner tag
	// that dies with the directory, and the bridge's forward rules): no
	// rule of its bridge or subnet may outlive it.
	for _, r := range testenv.NetworkRulesMentioning(t, h.bridge, h.subnet) {
		t.Errorf("rule of dev mode left after it stopped with no task: %s\n%s", r, agent.Output())
	}
}

// checkDevModeVersion checks the version that dev mode's agent registered
// with and shows at /v1/metadata.
func checkDevModeVersion(t *testing.T, h *devHost, client *ecs.Client, version string) {
	t.Helper()
	list, err := client.ListContainerInstances(t.Context(), &ecs.ListContainerInstancesInput{Cluster: aws.String("default")})
	if err != nil {
		t.Fatalf("list container instances: %v", err)
	}
	desc, err := client.DescribeContainerInstances(t.Context(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String("default"), ContainerInstances: list.ContainerInstanceArns})
	if err != nil || len(desc.ContainerInstances) != 1 || desc.ContainerInstances[0].VersionInfo == nil {
		t.Fatalf("describe container instances: %v (%+v)", err, desc)
	}
	if got := aws.ToString(desc.ContainerInstances[0].VersionInfo.AgentVersion); got != version {
		t.Errorf("dev mode: versionInfo.agentVersion %q, want %q", got, version)
	}
	if got, want := metadataVersion(t, h.intro), "Berth Agent - "+version; got != want {
		t.Errorf("dev mode: /v1/metadata Version %q, want %q", got, want)
	}
}
