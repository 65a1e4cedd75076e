package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// TestUpstreamAgentRegistration replays the RegisterContainerInstance body
// that the upstream ECS agent sends (captured on loopback), signed with an
// agent key, and checks the instance as ECS would describe it.
func TestUpstreamAgentRegistration(t *testing.T) {
	// A copy of shared/protocol/fixtures/ecs-agent-RegisterContainerInstance.json.
	raw, err := os.ReadFile("testdata/ecs-agent-RegisterContainerInstance.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixture struct {
		Request json.RawMessage `json:"request"`
	}
	if err := json.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	re := startEndpoint(t, t.TempDir())
	ctx := context.Background()
	if _, err := re.admin().CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatal(err)
	}
	id, secret := newKey(t, re.ep, auth.RoleAgent)
	if status, typ := re.do(t, rawRequest{target: "RegisterContainerInstance", body: string(fixture.Request), id: id, secret: secret}); status != 200 {
		t.Fatalf("upstream agent registration: HTTP %d %s", status, typ)
	}
	list, err := re.admin().ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("lab")})
	if err != nil || len(list.ContainerInstanceArns) != 1 {
		t.Fatalf("ListContainerInstances = %v, %v", list, err)
	}
	d, err := re.admin().DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("lab"), ContainerInstances: list.ContainerInstanceArns})
	if err != nil {
		t.Fatal(err)
	}
	ci := d.ContainerInstances[0]
	if remaining(ci, "CPU") != 2048 || remaining(ci, "MEMORY") != 24105 || len(ci.Attributes) < 40 || ci.AgentConnected {
		t.Errorf("instance = cpu %d memory %d, %d attributes, connected %v", remaining(ci, "CPU"), remaining(ci, "MEMORY"), len(ci.Attributes), ci.AgentConnected)
	}
	// The agent may deregister its own instance.
	agent := re.client(id, secret)
	if _, err := agent.DeregisterContainerInstance(ctx, &ecs.DeregisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstance: aws.String(list.ContainerInstanceArns[0])}); err != nil {
		t.Fatalf("agent deregistering its own instance: %v", err)
	}
}

// recordingNotifier watches the task changes the session server is told.
type recordingNotifier struct {
	mu      sync.Mutex
	changes []records.TaskChange
}

func (r *recordingNotifier) TasksChanged(_ context.Context, cs []records.TaskChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, cs...)
}

func (r *recordingNotifier) take() []records.TaskChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

// TestNotifierHook checks that the hook the ACS server will implement is
// told about placed tasks and desired-status changes, and not about
// requests that changed nothing.
func TestNotifierHook(t *testing.T) {
	rec := &recordingNotifier{}
	re := startEndpointWith(t, t.TempDir(), func(o *cluster.Options) { o.Notifier = rec })
	l := buildLab(t, re)
	ctx := context.Background()
	placed := rec.take()
	if len(placed) != 3 {
		t.Fatalf("after RunTask of 3: %d changes, want 3", len(placed))
	}
	for i, c := range placed {
		if !c.Placed || c.DesiredStatus != "RUNNING" || c.TaskArn != *l.tasks[i].TaskArn || c.ContainerInstanceArn != *l.tasks[i].ContainerInstanceArn ||
			c.ClusterArn != "arn:aws:ecs:us-test-1:123456789012:cluster/lab" {
			t.Errorf("change %d = %+v, want task %s placed", i, c, *l.tasks[i].TaskArn)
		}
	}
	// Nothing fits: no change. Then a stop, twice: one change.
	if _, err := l.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String("web"), Count: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := l.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("lab"), Task: l.tasks[2].TaskArn}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.take()
	if len(got) != 1 || got[0].Placed || got[0].DesiredStatus != "STOPPED" || got[0].TaskArn != *l.tasks[2].TaskArn || got[0].ContainerInstanceArn != l.instB {
		t.Errorf("after a failed RunTask and two StopTasks: %+v, want one STOPPED change for task 3 on B", got)
	}
}

// TestAgentSessionsWiring: the session server answers GET /ws, keeps
// agentConnected, so only instances whose agent holds a session get tasks,
// is told about the tasks placed, and its sessions end with the endpoint.
func TestAgentSessionsWiring(t *testing.T) {
	rec := &recordingNotifier{}
	re := startEndpointWith(t, t.TempDir(), func(o *cluster.Options) { o.NoAgentSessions, o.Notifier = false, rec })
	resp, err := http.Get(re.url + "/ws?clusterArn=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != auth.MissingAuthenticationToken {
		t.Errorf("unsigned GET /ws: HTTP %d %s, want the session server's 403 %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), auth.MissingAuthenticationToken)
	}
	ctx := context.Background()
	admin := re.admin()
	if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterTaskDefinition(ctx, loadTaskDefinition(t)); err != nil {
		t.Fatal(err)
	}
	id, secret := newKey(t, re.ep, auth.RoleAgent)
	reg, err := re.client(id, secret).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), TotalResources: resources(4096, 4096)})
	if err != nil {
		t.Fatal(err)
	}
	arn := *reg.ContainerInstance.ContainerInstanceArn
	run := func() *ecs.RunTaskOutput {
		t.Helper()
		out, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String("web"), Count: aws.Int32(3)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := run(); len(out.Tasks) != 0 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != "AGENT" || aws.ToString(out.Failures[0].Arn) != arn {
		t.Fatalf("RunTask with the agent disconnected = %+v, want one AGENT failure", out)
	}
	conn := dialACS(t, re, id, secret, arn)
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !connected(t, re, arn) {
		if time.Now().After(deadline) {
			t.Fatal("agentConnected not set while the agent holds a session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := run(); len(out.Tasks) != 3 {
		t.Fatalf("RunTask with the agent connected placed %d tasks (failures %+v), want 3", len(out.Tasks), out.Failures)
	}
	if n := len(rec.take()); n != 3 {
		t.Errorf("told about %d tasks, want 3", n)
	}
	re.stop()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the session outlived the endpoint")
			}
			break
		}
	}
}

// dialACS opens the ACS session of instanceArn signed with an agent key.
func dialACS(t *testing.T, re *runningEndpoint, id, secret, instanceArn string) *websocket.Conn {
	t.Helper()
	q := url.Values{"clusterArn": {"lab"}, "containerInstanceArn": {instanceArn}, "seqNum": {"1"}, "protocolVersion": {"2"}}
	plain := re.url + "/ws?" + q.Encode()
	req, _ := http.NewRequest(http.MethodGet, plain, nil)
	sum := sha256.Sum256(nil)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, req,
		hex.EncodeToString(sum[:]), "ecs", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Authorization": {req.Header.Get("Authorization")}, "X-Amz-Date": {req.Header.Get("X-Amz-Date")}}
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(plain, "http"), h)
	if err != nil {
		t.Fatalf("dial ACS: %v (%+v)", err, resp)
	}
	return conn
}

func connected(t *testing.T, re *runningEndpoint, arn string) bool {
	t.Helper()
	out, err := re.admin().DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String("lab"), ContainerInstances: []string{arn}})
	if err != nil || len(out.ContainerInstances) != 1 {
		t.Fatalf("DescribeContainerInstances: %v", err)
	}
	return out.ContainerInstances[0].AgentConnected
}

// TestStopTaskOnDeregisteredInstance: with no agent left to report, a
// stopped task on a force-deregistered instance is STOPPED at once.
func TestStopTaskOnDeregisteredInstance(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	ctx := context.Background()
	if _, err := l.agentB.DeregisterContainerInstance(ctx, &ecs.DeregisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstance: aws.String(l.instB)}); errorCode(err) != "InvalidParameterException" {
		t.Fatalf("deregistering an instance with a task without force: %v, want InvalidParameterException", err)
	}
	if _, err := l.agentB.DeregisterContainerInstance(ctx, &ecs.DeregisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstance: aws.String(l.instB), Force: aws.Bool(true)}); err != nil {
		t.Fatalf("force deregistration: %v", err)
	}
	// The deregistered instance cannot come back under its old ARN.
	if _, err := l.agentB.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstanceArn: aws.String(l.instB), TotalResources: resources(512, 4096)}); errorCode(err) != "InvalidParameterException" || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("re-registering a deregistered instance: %v, want InvalidParameterException ... not registered", err)
	}
	out, err := l.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("lab"), Task: l.tasks[2].TaskArn})
	if err != nil || aws.ToString(out.Task.LastStatus) != "STOPPED" || out.Task.StoppedAt == nil {
		t.Fatalf("StopTask on a deregistered instance = %+v, %v; want STOPPED now", out, err)
	}
	onA, err := l.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn})
	if err != nil || aws.ToString(onA.Task.LastStatus) != "PROVISIONING" {
		t.Fatalf("StopTask on a live instance = %+v, %v; want it to wait for the agent", onA, err)
	}
}

// TestAgentKeyRotation: a host's new agent key takes over its instance
// once the old key is revoked, and not before.
func TestAgentKeyRotation(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	l := buildLab(t, re)
	ctx := context.Background()
	newID, newSecret := newKey(t, re.ep, auth.RoleAgent)
	next := re.client(newID, newSecret)
	reregister := &ecs.RegisterContainerInstanceInput{Cluster: aws.String("lab"), ContainerInstanceArn: aws.String(l.instA), TotalResources: resources(2048, 800)}
	if _, err := next.RegisterContainerInstance(ctx, reregister); errorCode(err) != "AccessDeniedException" {
		t.Fatalf("takeover while the old key is active: %v, want AccessDeniedException", err)
	}
	if err := re.ep.Keys().Revoke(l.agentAKey); err != nil {
		t.Fatal(err)
	}
	out, err := next.RegisterContainerInstance(ctx, reregister)
	if err != nil || aws.ToString(out.ContainerInstance.ContainerInstanceArn) != l.instA {
		t.Fatalf("takeover after revoking the old key = %v, %v; want the same ARN", out, err)
	}
	if _, err := next.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, Status: aws.String("RUNNING")}); err != nil {
		t.Fatalf("new key reporting for the instance's task: %v", err)
	}
	// The other instance stays bound to its own key.
	if _, err := next.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("lab"), Task: l.tasks[2].TaskArn, Status: aws.String("RUNNING")}); errorCode(err) != "AccessDeniedException" {
		t.Fatalf("new key reporting for B's task: %v, want AccessDeniedException", err)
	}
}

// syncBuf collects log output written from request goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsNeverCarrySecrets runs the walk-through with debug logging and
// checks that requests are logged and no secret is.
func TestLogsNeverCarrySecrets(t *testing.T) {
	logs := &syncBuf{}
	re := startEndpointWith(t, t.TempDir(), func(o *cluster.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	l := buildLab(t, re)
	re.client(re.adminID, "wrong-secret-wrong-secret-wrong-secret00").ListClusters(context.Background(), &ecs.ListClustersInput{})
	re.stop()
	out := logs.String()
	if !strings.Contains(out, "operation=RunTask") || !strings.Contains(out, "error=InvalidSignatureException") {
		t.Errorf("logs lack the requests:\n%s", out)
	}
	for _, secret := range []string{re.adminSecret, l.agentASecret} {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret appears in the logs")
		}
	}
}

// TestAPIsShareTheEndpoint: the CloudWatch Logs API shares POST / with ECS
// by target prefix, with its own SigV4 service checked both ways.
func TestAPIsShareTheEndpoint(t *testing.T) {
	re := startEndpoint(t, t.TempDir())
	cases := []struct {
		name, target, service, body string
		wantStatus                  int
		want                        string
	}{
		{"logs op signed for logs", "Logs_20140328.CreateLogGroup", "logs", `{"logGroupName":"g"}`, 200, ""},
		{"the log store's error type", "Logs_20140328.DeleteLogGroup", "logs", `{"logGroupName":"missing"}`, 400, "ResourceNotFoundException"},
		{"logs op signed for ecs", "Logs_20140328.CreateLogGroup", "ecs", `{"logGroupName":"h"}`, 400, "InvalidSignatureException"},
		{"ecs op signed for logs", "ListClusters", "logs", "{}", 400, "InvalidSignatureException"},
		{"unknown prefix", "Kinesis_20131202.ListStreams", "logs", "{}", 400, "UnknownOperationException"},
		{"ecs op signed for ecs", "ListClusters", "ecs", "{}", 200, ""},
	}
	for _, c := range cases {
		status, typ := re.do(t, rawRequest{target: c.target, body: c.body, id: re.adminID, secret: re.adminSecret, service: c.service})
		if status != c.wantStatus || typ != c.want {
			t.Errorf("%s: HTTP %d %s, want %d %s", c.name, status, typ, c.wantStatus, c.want)
		}
	}
}

// TestPruneStoppedTasks: tasks STOPPED longer than the retention are
// forgotten; running and recently stopped ones stay.
func TestPruneStoppedTasks(t *testing.T) {
	var offset atomic.Int64
	re := startEndpointWith(t, t.TempDir(), func(o *cluster.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		o.StoppedTaskRetention = time.Hour
	})
	l := buildLab(t, re)
	ctx := context.Background()
	if _, err := l.agentA.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("lab"), Task: l.tasks[0].TaskArn, Status: aws.String("STOPPED")}); err != nil {
		t.Fatal(err)
	}
	if n, err := re.ep.PruneStoppedTasks(); err != nil || n != 0 {
		t.Fatalf("prune right after the stop = %d, %v; want 0", n, err)
	}
	offset.Store(int64(2 * time.Hour))
	n, err := re.ep.PruneStoppedTasks()
	offset.Store(0)
	if err != nil || n != 1 {
		t.Fatalf("prune two hours later = %d, %v; want 1", n, err)
	}
	dt, err := l.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("lab"), Tasks: []string{*l.tasks[0].TaskArn, *l.tasks[1].TaskArn}})
	if err != nil || len(dt.Tasks) != 1 || *dt.Tasks[0].TaskArn != *l.tasks[1].TaskArn || len(dt.Failures) != 1 {
		t.Fatalf("DescribeTasks after pruning = %+v, %v; want the stopped task MISSING and the other kept", dt, err)
	}
}

// TestKeysReachEndpointOnceListening: as soon as Listen returns (the moment
// berth-cluster tells systemd READY), `keys` commands go through the admin
// socket, even before Serve has started, instead of timing out on the
// store file the endpoint holds.
func TestKeysReachEndpointOnceListening(t *testing.T) {
	dir := t.TempDir()
	ep, err := cluster.Open(context.Background(), cluster.Options{Listen: "127.0.0.1:0", InsecureHTTP: true,
		Region: testRegion, AccountID: testAccount, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ep.Listen()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		admin cluster.KeyAdmin
		err   error
	}
	opened := make(chan result, 1)
	go func() {
		a, err := cluster.OpenKeyring(dir)
		opened <- result{a, err}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx, ln) }()
	r := <-opened
	if r.err != nil {
		t.Fatalf("keys while the endpoint starts: %v", r.err)
	}
	id, _, err := r.admin.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatalf("create through the admin socket: %v", err)
	}
	keys, err := ep.Keys().List()
	if err != nil || len(keys) != 1 || keys[0].AccessKeyID != id {
		t.Fatalf("endpoint keyring: %v %+v, want the key %s", err, keys, id)
	}
	r.admin.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
}
