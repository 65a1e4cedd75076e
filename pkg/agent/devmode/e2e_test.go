package devmode_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
)

// TestDevModeRunTaskStopTask runs `berth-agent --dev` in-process and uses
// it the way a user does: through DIR/env and the AWS SDK's own
// configuration loading.
func TestDevModeRunTaskStopTask(t *testing.T) {
	e := newE2E(t, acs.Options{}) // containerd, registry and image; its endpoint is unused here
	s := e.spec()
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	exe, _ := os.Executable()
	started := make(chan *devmode.Dev, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out strings.Builder
	var outMu sync.Mutex
	go func() {
		done <- devmode.Run(ctx, devmode.Options{
			Dir: dir, Config: cfg, Out: lockedWriter{&outMu, &out}, Logger: logger(),
			AgentOptions: []agent.Option{agent.WithLoggerBinary(exe), agent.WithNetworkRunDir(s.NetRunDir),
				agent.WithNamePrefix(s.Prefix), agent.WithSnapshotter(s.Snapshotter)},
			Membership: agent.Membership{SubmitPoll: 50 * time.Millisecond},
			Started:    func(d *devmode.Dev) { started <- d },
		})
	}()
	var dev *devmode.Dev
	select {
	case dev = <-started:
	case err := <-done:
		t.Fatalf("dev mode stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev mode did not start")
	}
	e.admin = devmode.NewECSClient(dev.Endpoint.URL, region, dev.Admin) // cleanup stops tasks through dev mode's endpoint
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("dev mode: %v", err)
		}
		// A clean stop removes the credentials route.
		if lines := credsRules(t, s.Bridge); len(lines) != 0 {
			t.Errorf("after a clean stop, credentials rules remain:\n%s", strings.Join(lines, "\n"))
		}
	})
	e.stopTasksAtCleanup()

	// DIR/env holds the exports; it was printed at start too.
	envFile := filepath.Join(dir, "env")
	if dev.EnvFile != envFile {
		t.Errorf("env file %s, want %s", dev.EnvFile, envFile)
	}
	f, err := os.Open(envFile)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		vars[k] = v
		t.Setenv(k, v)
	}
	f.Close()
	for _, k := range []string{"AWS_ENDPOINT_URL_ECS", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		if vars[k] == "" {
			// Without the endpoints the SDK would go to AWS: stop here.
			t.Fatalf("%s has no %s", envFile, k)
		}
	}
	outMu.Lock()
	printed := out.String()
	outMu.Unlock()
	if !strings.Contains(printed, "export AWS_ENDPOINT_URL_ECS="+dev.Endpoint.URL) {
		t.Errorf("dev mode printed %q, want the exports", printed)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("load AWS config from %s: %v", envFile, err)
	}
	client := ecs.NewFromConfig(awsCfg)
	clusters, err := client.ListClusters(context.Background(), &ecs.ListClustersInput{})
	if err != nil || len(clusters.ClusterArns) != 1 || !strings.HasSuffix(clusters.ClusterArns[0], ":cluster/default") {
		t.Fatalf("ListClusters through DIR/env = %+v, %v; want the cluster default", clusters, err)
	}
	e.admin = client
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := client.ListContainerInstances(context.Background(), &ecs.ListContainerInstancesInput{})
		if err == nil && len(list.ContainerInstanceArns) == 1 {
			e.waitConnected(list.ContainerInstanceArns[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dev agent did not register: %+v, %v", list, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Dev mode turned task roles on, with the credentials listener on a free
	// loopback port: the DNAT of 169.254.170.2:80 points at that port.
	var rules []string
	for i := 0; ; i++ {
		if rules = credsRules(t, s.Bridge); len(rules) == 2 || i == 100 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	dst := ""
	for _, l := range rules {
		if _, after, ok := strings.Cut(l, "--to-destination "); ok {
			dst = after
		}
	}
	if len(rules) != 2 || dst == "" || dst == "127.0.0.1:51679" {
		t.Fatalf("credentials rules of the dev agent = %q; want the DNAT to a free port and the INPUT guard", rules)
	}
	if resp, err := http.Get("http://" + dst + "/v2/credentials/"); err != nil {
		t.Errorf("GET the credentials listener at %s: %v", dst, err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s/v2/credentials/ = %d, want 400 (no id)", dst, resp.StatusCode)
		}
	}
	// Its audit log is under DIR, like every other file of dev mode. The
	// log is buffered (written 100 ms after a first line): the wait for
	// the line bounds a hang and asserts no timing.
	var audit []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		audit, err = os.ReadFile(filepath.Join(dir, "audit.log"))
		if err == nil && strings.Contains(string(audit), " 400 ") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(string(audit), " 400 ") {
		t.Errorf("DIR/audit.log = %q, %v after 10s; want the 400 line", audit, err)
	}

	// The container logs through awslogs: dev mode sends it to its own
	// CloudWatch Logs-compatible store, readable through DIR/env.
	tdOut, err := client.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("web"),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("web"), Image: aws.String(e.image), Memory: aws.Int32(32), Essential: aws.Bool(true),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0)}},
			LogConfiguration: &types.LogConfiguration{LogDriver: types.LogDriverAwslogs, Options: map[string]string{
				"awslogs-group": "/berth/dev", "awslogs-create-group": "true", "awslogs-stream-prefix": "web"}},
		}},
	})
	if err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	arns := e.runTasks(aws.ToString(tdOut.TaskDefinition.TaskDefinitionArn), 1)
	task := e.waitStatus(arns[0], "RUNNING", 90*time.Second)
	port := testenv.FirstHostPort(task)
	if port == 0 {
		t.Fatalf("RUNNING task has no networkBindings: %+v", task.Containers)
	}
	var body string
	for i := 0; i < 50; i++ {
		if body, err = testenv.GetLoopback(port); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "hello from berth\n" {
		t.Fatalf("GET 127.0.0.1:%d = %q, %v; want the page", port, body, err)
	}
	logsClient := cloudwatchlogs.NewFromConfig(awsCfg)
	taskID := arns[0][strings.LastIndex(arns[0], "/")+1:]
	stream := "web/web/" + taskID
	var events []string
	for i := 0; i < 100 && len(events) == 0; i++ {
		out, err := logsClient.GetLogEvents(context.Background(), &cloudwatchlogs.GetLogEventsInput{
			LogGroupName: aws.String("/berth/dev"), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true)})
		if err == nil {
			for _, ev := range out.Events {
				events = append(events, aws.ToString(ev.Message))
			}
		}
		if len(events) == 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !slices.ContainsFunc(events, func(m string) bool { return strings.Contains(m, "response:200") }) {
		streams, serr := logsClient.DescribeLogStreams(context.Background(), &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/berth/dev")})
		if serr == nil {
			for _, st := range streams.LogStreams {
				t.Logf("stream %s", aws.ToString(st.LogStreamName))
			}
		} else {
			t.Logf("DescribeLogStreams: %v", serr)
		}
		t.Errorf("awslogs stream /berth/dev %s holds %q, want the httpd request line", stream, events)
	}
	ci, err := client.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		ContainerInstances: []string{aws.ToString(task.ContainerInstanceArn)}})
	if err != nil || len(ci.ContainerInstances) != 1 || !ci.ContainerInstances[0].AgentConnected {
		t.Errorf("DescribeContainerInstances = %+v, %v; want agentConnected", ci, err)
	}

	if _, err := client.StopTask(context.Background(), &ecs.StopTaskInput{Task: aws.String(arns[0]), Reason: aws.String("e2e: done")}); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	stopped := e.waitStatus(arns[0], "STOPPED", 60*time.Second)
	if aws.ToString(stopped.StoppedReason) != "e2e: done" {
		t.Errorf("stoppedReason = %q, want the StopTask reason", aws.ToString(stopped.StoppedReason))
	}
	if c := stopped.Containers[0]; c.ExitCode == nil || aws.ToString(c.LastStatus) != "STOPPED" {
		t.Errorf("container = %s exit %v, want STOPPED with an exit code", aws.ToString(c.LastStatus), c.ExitCode)
	}
}

// credsRules returns the iptables-save lines of the credentials route of the
// agent whose bridge is bridge (the route's comment names the bridge).
func credsRules(t *testing.T, bridge string) []string {
	t.Helper()
	var out []string
	for _, table := range []string{"nat", "filter"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"berth:creds:`+bridge+`"`) {
				out = append(out, l)
			}
		}
	}
	return out
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDroppedAckIsRedeliveredAndTaskStartsOnce loses the agent's first
// acknowledgement of every message: the endpoint resends the payload, the
// agent accepts it again, and the task still runs exactly once.
func TestDroppedAckIsRedeliveredAndTaskStartsOnce(t *testing.T) {
	var mu sync.Mutex
	acks := map[string]int{}
	e := newE2E(t, acs.Options{RedeliverAfter: 300 * time.Millisecond, DropAck: func(_, id string) bool {
		mu.Lock()
		defer mu.Unlock()
		acks[id]++
		return acks[id] == 1
	}})
	s := e.spec()
	e.runAgent(s)
	arns := e.runTasks(e.taskDef("web", 0), 1)
	e.waitStatus(arns[0], "RUNNING", 90*time.Second)
	mu.Lock()
	redelivered := 0
	for _, n := range acks {
		if n >= 2 {
			redelivered++
		}
	}
	mu.Unlock()
	if redelivered == 0 {
		t.Fatalf("no message was acknowledged twice (acks %v): the dropped ack was not followed by a redelivery", acks)
	}
	if got := e.rec.of(arns[0]); slices.Index(got, "task:RUNNING") < 0 || count(got, "task:RUNNING") != 1 || count(got, "web:RUNNING") != 1 {
		t.Errorf("state changes %v, want the container and task RUNNING exactly once", got)
	}
	cli := e.cd.Client(t)
	cs, err := cli.Containers(namespaced(t, s.NS))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Errorf("containerd has %d containers for one task, want 1", len(cs))
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestEndpointOutage stops the endpoint for 30 seconds while tasks start
// and stop: containers keep running, and afterwards every state change
// arrives, none twice, in order.
func TestEndpointOutage(t *testing.T) {
	e := newE2E(t, acs.Options{})
	s := e.spec()
	_, sess, _ := e.runAgent(s)
	long := e.runTasks(e.taskDef("web", 0), 1)[0]
	first := e.waitStatus(long, "RUNNING", 90*time.Second)
	short := e.runTasks(e.taskDef("short", 0, "/bin/sh", "-c", "sleep 3; exit 3"), 2)
	// Wait until the agent has the short tasks, then take the endpoint away
	// before they run.
	deadline := time.Now().Add(30 * time.Second)
	for len(e.rec.of(short[0])) == 0 && len(e.rec.of(short[1])) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	addr := e.ep.Addr
	// Requests in flight finish and are answered, as when berth-cluster is
	// stopped with SIGTERM.
	if err := e.ep.Shutdown(context.Background()); err != nil {
		t.Fatalf("stop the endpoint: %v", err)
	}
	outage := time.Now()
	for _, arn := range short {
		if got := e.rec.of(arn); slices.Contains(got, "task:STOPPED") {
			t.Fatalf("task %s was reported STOPPED before the outage (%v); the test would prove nothing", arn, got)
		}
	}
	for time.Since(outage) < 30*time.Second {
		if p := testenv.FirstHostPort(first); p != 0 {
			if body, err := testenv.GetLoopback(p); err != nil || body != "hello from berth\n" {
				t.Errorf("during the outage the running task's port answered %q, %v", body, err)
				break
			}
		}
		time.Sleep(2 * time.Second)
	}
	if sess().Connected() {
		t.Error("agent still reports an ACS session while the endpoint is down")
	}
	e.startEndpoint(addr)
	for _, arn := range short {
		got := e.waitStatus(arn, "STOPPED", 60*time.Second)
		if c := got.Containers[0]; aws.ToInt32(c.ExitCode) != 3 {
			t.Errorf("task %s container exit code %v, want 3", arn, c.ExitCode)
		}
	}
	e.waitStatus(long, "RUNNING", 10*time.Second)
	time.Sleep(time.Second) // anything still queued would arrive now
	for _, arn := range short {
		got := e.rec.of(arn)
		want := []string{"web:RUNNING", "task:RUNNING", "web:STOPPED", "task:STOPPED"}
		var seen []string
		for _, g := range got {
			if slices.Contains(want, g) {
				seen = append(seen, g)
			}
		}
		if !slices.Equal(seen, want) {
			t.Errorf("task %s state changes %v, want %v in this order, each once", arn, got, want)
		}
	}
	if got := e.rec.of(long); count(got, "task:RUNNING") != 1 {
		t.Errorf("long task state changes %v, want RUNNING once", got)
	}
}

// TestSecondAgentJoins runs two agents with their own data, bridges and
// port ranges; a static host port forces the scheduler to use both.
func TestSecondAgentJoins(t *testing.T) {
	e := newE2E(t, acs.Options{})
	arnA, _, _ := e.runAgent(e.spec())
	arnB, _, _ := e.runAgent(e.spec())
	if arnA == arnB {
		t.Fatalf("both agents registered as %s", arnA)
	}
	port := int32(28000 + time.Now().UnixNano()%1000)
	arns := e.runTasks(e.taskDef("static", port), 1)
	arns = append(arns, e.runTasks(e.taskDef("static", port), 1)...)
	placed := map[string]bool{}
	for _, arn := range arns {
		task := e.waitStatus(arn, "RUNNING", 90*time.Second)
		placed[aws.ToString(task.ContainerInstanceArn)] = true
	}
	if !placed[arnA] || !placed[arnB] {
		t.Fatalf("tasks placed on %v, want both %s and %s", placed, arnA, arnB)
	}
	if body, err := testenv.GetLoopback(port); err != nil || body != "hello from berth\n" {
		t.Errorf("static port %d answered %q, %v", port, body, err)
	}
}

// TestAgentKillRestart SIGKILLs a child agent, stops one of its tasks
// through the API while it is down, and restarts it.
func TestAgentKillRestart(t *testing.T) {
	e := newE2E(t, acs.Options{})
	s := e.spec()
	c, arn := e.startChild(s)
	arns := e.runTasks(e.taskDef("web", 0), 2)
	before := map[string]string{}
	for _, a := range arns {
		task := e.waitStatus(a, "RUNNING", 90*time.Second)
		before[a] = aws.ToString(task.Containers[0].RuntimeId)
	}
	keep, stop := arns[0], arns[1]
	c.Kill()
	if _, err := e.admin.StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String("default"), Task: aws.String(stop)}); err != nil {
		t.Fatalf("StopTask while the agent is down: %v", err)
	}
	_, arn2 := e.startChild(s)
	if arn2 != arn {
		t.Fatalf("restarted agent registered as %s, want the same instance %s", arn2, arn)
	}
	e.waitStatus(stop, "STOPPED", 60*time.Second)
	kept := e.waitStatus(keep, "RUNNING", 10*time.Second)
	if id := aws.ToString(kept.Containers[0].RuntimeId); id != before[keep] {
		t.Errorf("running container changed from %s to %s across the agent restart", before[keep], id)
	}
	if body, err := testenv.GetLoopback(testenv.FirstHostPort(kept)); err != nil || body != "hello from berth\n" {
		t.Errorf("kept task's port answered %q, %v", body, err)
	}
	list, err := e.admin.ListContainerInstances(context.Background(), &ecs.ListContainerInstancesInput{Cluster: aws.String("default")})
	if err != nil || len(list.ContainerInstanceArns) != 1 {
		t.Errorf("container instances = %v, %v; want exactly one", list, err)
	}
	cli := e.cd.Client(t)
	cs, err := cli.Containers(namespaced(t, s.NS))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) > 2 {
		t.Errorf("containerd has %d containers for two tasks: duplicates", len(cs))
	}
	if got := e.rec.of(keep); count(got, "task:RUNNING") != 1 {
		t.Errorf("kept task state changes %v, want RUNNING once", got)
	}
}
