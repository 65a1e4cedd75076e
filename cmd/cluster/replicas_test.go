package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/cluster"
)

// childEnv makes the test binary run as berth-cluster (its arguments are
// the command line), so that tests run replicas as real processes and can
// kill -9 them.
const childEnv = "BERTH_CLUSTER_TEST_CHILD"

// TestMain runs the test binary as a replica (childEnv), as an agent
// (agentChildEnv, agents_test.go), as the agents' log daemon or shim
// logger, or else the tests, with testenv tearing down what it started.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
	}
	os.Exit(agentproc.Main(m, agentChildEnv, runAgentChild))
}

// replicaProc is one `berth-cluster serve` process.
type replicaProc struct {
	name, addr, cfg, logPath string
	cmd                      *exec.Cmd
	exited                   chan struct{}
}

func (r *replicaProc) url() string { return "http://" + r.addr }

func (r *replicaProc) log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

func (r *replicaProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	r.cmd = exec.Command(os.Args[0], "serve", "--config", r.cfg)
	r.cmd.Env = append(os.Environ(), childEnv+"=1")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func() { r.cmd.Wait(); close(r.exited) }()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-r.exited:
			t.Fatalf("replica %s exited: %s", r.name, r.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not listen on %s: %s", r.name, r.addr, r.log())
		}
	}
}

// kill9 crashes the replica: no resignation, no session goodbye.
func (r *replicaProc) kill9(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.exited
}

// stop ends the replica with SIGTERM as systemd does; it must exit 0.
func (r *replicaProc) stop(t *testing.T) {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if code := r.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("replica %s exited %d on SIGTERM: %s", r.name, code, r.log())
		}
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
		t.Errorf("replica %s did not exit within 20s of SIGTERM", r.name)
	}
}

func (r *replicaProc) leads() bool { return strings.Contains(r.log(), "this replica leads") }

// TestReplicaProcesses runs three `berth-cluster serve` processes on three
// etcd members with four simulated agents whose ECS_BACKEND_HOST lists the
// replicas (two fleets, each starting on another replica):
//   - one etcd member killed: a service of 10 tasks is created and runs;
//   - the leader replica killed with SIGKILL during a rolling deployment
//     of that service: another replica leads within seconds, the agents
//     it held move to the next replica in their list, and the deployment
//     completes with exactly 10 new tasks placed, 10 old ones stopped,
//     nothing running twice or left behind, and what the endpoint says
//     runs is what the agents run;
//   - two etcd members killed: writes refused with a 503 naming the lost
//     quorum, reads stale-marked, the agents keep their tasks; members
//     back: writes work again.
func TestReplicaProcesses(t *testing.T) {
	etcd := testenv.Etcd(t, 3)
	set := newReplicaSet(t, etcd, "/berth/procs/", "")
	reps, newKey, client, live := set.reps, set.newKey, set.client, set.live
	for _, r := range reps {
		set.start(t, r)
	}
	ctx := context.Background()
	if _, err := client(reps[0]).CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("rep")}); err != nil {
		t.Fatal(err)
	}
	for rev := range 2 {
		if _, err := client(reps[rev]).RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(64),
				Environment: []types.KeyValuePair{{Name: aws.String("REV"), Value: aws.String(fmt.Sprint(rev + 1))}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Two fleets of two agents, each with the replicas listed from another
	// first one, as ECS_BACKEND_HOST.
	var fleets []*simfleet.Fleet
	for i := range 2 {
		list := []string{reps[i].url(), reps[(i+1)%3].url(), reps[(i+2)%3].url()}
		f, err := simfleet.Start(ctx, simfleet.Options{Endpoint: strings.Join(list, ","), Region: "us-test-1", Cluster: "rep",
			NewAgentKey: func() (string, string, error) { return newKey("agent") },
			StartDelay:  300 * time.Millisecond, StopDelay: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		if _, err := f.Add(ctx, 2, nil); err != nil {
			t.Fatal(err)
		}
		fleets = append(fleets, f)
	}
	onAgents := func() []string {
		var out []string
		for _, f := range fleets {
			for _, in := range f.Instances() {
				out = append(out, in.Running()...)
			}
		}
		sort.Strings(out)
		return out
	}
	// endpointRunning is what the endpoint says runs, through any live replica.
	endpointRunning := func() []string {
		c := live()[0]
		lt, err := c.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("rep"), DesiredStatus: types.DesiredStatusRunning})
		if err != nil {
			return nil
		}
		sort.Strings(lt.TaskArns)
		return lt.TaskArns
	}
	service := func() *types.Service {
		out, err := live()[0].DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rep"), Services: []string{"web"}})
		if err != nil || len(out.Services) != 1 {
			return nil
		}
		return &out.Services[0]
	}

	t.Run("OneEtcdMemberDown", func(t *testing.T) {
		etcd.Kill(t, 0)
		if _, err := client(reps[2]).CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("rep"), ServiceName: aws.String("web"),
			TaskDefinition: aws.String("web:1"), DesiredCount: aws.Int32(10),
			DeploymentConfiguration: &types.DeploymentConfiguration{MaximumPercent: aws.Int32(130), MinimumHealthyPercent: aws.Int32(100)}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "10 service tasks running on the agents", func() bool {
			s := service()
			return s != nil && s.RunningCount == 10 && len(onAgents()) == 10
		})
		for _, c := range live() {
			out, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String("web:1")})
			if err != nil || len(out.Tasks) != 1 {
				t.Fatalf("RunTask with one etcd member down: %v", err)
			}
			arn := aws.ToString(out.Tasks[0].TaskArn)
			waitFor(t, 20*time.Second, "the RunTask task on an agent", func() bool { return slices.Contains(onAgents(), arn) })
			if _, err := c.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("rep"), Task: aws.String(arn)}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "the stopped task gone from its agent", func() bool { return !slices.Contains(onAgents(), arn) })
		}
		etcd.Restart(t, 0)
	})

	t.Run("LeaderKilledDuringDeployment", func(t *testing.T) {
		var leader *replicaProc
		waitFor(t, 20*time.Second, "one replica leading", func() bool {
			for _, r := range reps {
				if r.leads() {
					leader = r
					return true
				}
			}
			return false
		})
		connectsBefore := map[*simfleet.Instance]int64{}
		for _, f := range fleets {
			for _, in := range f.Instances() {
				connectsBefore[in] = in.Connects()
			}
		}
		oldTasks := onAgents()
		var other *replicaProc
		for _, r := range reps {
			if r != leader {
				other = r
				break
			}
		}
		if _, err := client(other).UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("rep"), Service: aws.String("web"),
			TaskDefinition: aws.String("web:2")}); err != nil {
			t.Fatal(err)
		}
		// Kill the leader once the deployment has begun (some new tasks
		// placed) and before it ends (old tasks still running).
		waitFor(t, 20*time.Second, "the rolling deployment under way", func() bool {
			return len(onAgents()) > 10
		})
		if len(intersect(onAgents(), oldTasks)) == 0 {
			t.Fatal("the deployment ended before the leader could be killed; slow the agents down")
		}
		leader.kill9(t)
		killed := time.Now()
		t.Logf("killed the leader %s with SIGKILL, %d old tasks still running", leader.name, len(intersect(onAgents(), oldTasks)))
		var next *replicaProc
		waitFor(t, 20*time.Second, "another replica leading", func() bool {
			for _, r := range reps {
				if r != leader && r.leads() {
					next = r
					return true
				}
			}
			return false
		})
		t.Logf("%s leads %v after the kill", next.name, time.Since(killed).Round(100*time.Millisecond))
		waitFor(t, 60*time.Second, "the deployment completed: 10 tasks of web:2 on the agents, one deployment", func() bool {
			s := service()
			return s != nil && len(s.Deployments) == 1 && strings.HasSuffix(aws.ToString(s.Deployments[0].TaskDefinition), ":2") &&
				s.RunningCount == 10 && len(onAgents()) == 10 && len(intersect(onAgents(), oldTasks)) == 0
		})
		t.Logf("deployment completed %v after the kill", time.Since(killed).Round(100*time.Millisecond))
		if got, want := endpointRunning(), onAgents(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the endpoint says %v run, the agents run %v", got, want)
		}
		// Every web:2 task the endpoint ever placed is one the agents run:
		// none placed twice by the old and the new leader, none lost.
		all := map[string]string{}
		for _, st := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			lt, err := client(next).ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("rep"), DesiredStatus: st, ServiceName: aws.String("web")})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(lt.TaskArns); i += 100 {
				dt, err := client(next).DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("rep"), Tasks: lt.TaskArns[i:min(i+100, len(lt.TaskArns))]})
				if err != nil {
					t.Fatal(err)
				}
				for _, tk := range dt.Tasks {
					all[aws.ToString(tk.TaskArn)] = aws.ToString(tk.TaskDefinitionArn) + " " + aws.ToString(tk.LastStatus)
				}
			}
		}
		var placed2, old1 int
		for arn, v := range all {
			switch {
			case strings.Contains(v, ":2 "):
				placed2++
				if !strings.HasSuffix(v, " RUNNING") || !slices.Contains(onAgents(), arn) {
					t.Errorf("web:2 task %s is %s, not running on an agent", arn, v)
				}
			case slices.Contains(oldTasks, arn):
				old1++
				if !strings.HasSuffix(v, " STOPPED") {
					t.Errorf("old task %s is %s", arn, v)
				}
			}
		}
		if placed2 != 10 || old1 != 10 {
			t.Errorf("the deployment placed %d web:2 tasks and stopped %d of the 10 old ones; want 10 and 10", placed2, old1)
		}
		// The agents the dead replica held moved to the next in their list.
		moved := 0
		for _, f := range fleets {
			for _, in := range f.Instances() {
				if in.Connects() > connectsBefore[in] {
					moved++
				}
			}
		}
		if moved == 0 {
			t.Errorf("no agent session moved after %s died", leader.name)
		}
		t.Logf("%d agent sessions moved to another replica", moved)
		ci, err := client(next).ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("rep")})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "every agent connected", func() bool {
			d, err := client(next).DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("rep"), ContainerInstances: ci.ContainerInstanceArns})
			if err != nil || len(d.ContainerInstances) != 4 {
				return false
			}
			for _, c := range d.ContainerInstances {
				if !c.AgentConnected {
					return false
				}
			}
			return true
		})
		// A new task reaches an agent whichever replica it moved to, and its
		// state changes arrive (acknowledged payload, RUNNING reported).
		out, err := client(next).RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String("web:2"), Count: aws.Int32(4)})
		if err != nil || len(out.Tasks) != 4 {
			t.Fatalf("RunTask after the failover: %v", err)
		}
		waitFor(t, 20*time.Second, "4 more tasks RUNNING by the endpoint and on the agents", func() bool {
			return len(onAgents()) == 14 && fmt.Sprint(endpointRunning()) == fmt.Sprint(onAgents())
		})
	})

	t.Run("QuorumLost", func(t *testing.T) {
		held := onAgents()
		etcd.Kill(t, 1)
		etcd.Kill(t, 2)
		for _, c := range live() {
			_, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String("web:2")})
			var ae smithy.APIError
			var re *awshttp.ResponseError
			if !errors.As(err, &ae) || ae.ErrorCode() != "ServerException" || !strings.Contains(ae.ErrorMessage(), "no quorum") ||
				!errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
				t.Fatalf("RunTask without quorum: %v; want ServerException, 503, naming the quorum", err)
			}
			out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rep"), Services: []string{"web"}})
			if err != nil || len(out.Services) != 1 {
				t.Fatalf("DescribeServices without quorum: %v", err)
			}
			if raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); raw == nil || raw.Header.Get(cluster.StaleHeader) == "" {
				t.Errorf("a read without quorum lacks %s", cluster.StaleHeader)
			}
		}
		time.Sleep(5 * time.Second) // longer than the replicas' leases
		if now := onAgents(); fmt.Sprint(now) != fmt.Sprint(held) {
			t.Errorf("without quorum the agents' tasks changed: %d before, %d now", len(held), len(now))
		}
		etcd.Restart(t, 1)
		etcd.Restart(t, 2)
		var arn string
		waitFor(t, 30*time.Second, "writes accepted again", func() bool {
			out, err := live()[0].RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String("web:2")})
			if err != nil || len(out.Tasks) != 1 {
				return false
			}
			arn = aws.ToString(out.Tasks[0].TaskArn)
			return true
		})
		waitFor(t, 20*time.Second, "the task run after the quorum came back on an agent", func() bool { return slices.Contains(onAgents(), arn) })
	})
}

// replicaSet is three `berth-cluster serve` replicas (r0, r1, r2) on one
// etcd cluster, sharing a KEK, with an admin key created through
// `keys create` before any of them starts.
type replicaSet struct {
	reps                 []*replicaProc
	adminID, adminSecret string
}

// newReplicaSet writes the replicas' configurations (store = "etcd" under
// prefix, extraTOML appended) and creates the admin key; start each
// replica with start.
func newReplicaSet(t *testing.T, etcd *testenv.EtcdCluster, prefix, extraTOML string) *replicaSet {
	t.Helper()
	dir := t.TempDir()
	kek := filepath.Join(dir, "cluster.kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{9}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &replicaSet{}
	for i := range 3 {
		r := &replicaProc{name: fmt.Sprintf("r%d", i), addr: freePort(t), logPath: filepath.Join(dir, fmt.Sprintf("r%d.log", i))}
		r.cfg = filepath.Join(dir, r.name+".toml")
		doc := fmt.Sprintf(`listen = %q
insecure_http = true
region = "us-test-1"
account_id = "123456789012"
data_dir = %q
store = "etcd"
[etcd]
endpoints = [%q, %q, %q]
prefix = %q
kek_file = %q
replica = %q
lease_ttl = 2
request_timeout = 2
`, r.addr, filepath.Join(dir, r.name), etcd.Endpoints[0], etcd.Endpoints[1], etcd.Endpoints[2], prefix, kek, r.name)
		if err := os.WriteFile(r.cfg, []byte(doc+extraTOML), 0o600); err != nil {
			t.Fatal(err)
		}
		s.reps = append(s.reps, r)
	}
	var err error
	if s.adminID, s.adminSecret, err = s.newKey("admin"); err != nil {
		t.Fatal(err)
	}
	return s
}

// newKey creates a key with `keys create` against etcd directly.
func (s *replicaSet) newKey(role string) (string, string, error) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "create", "--role", role, "--config", s.reps[0].cfg}, &out, &errb); code != 0 {
		return "", "", fmt.Errorf("keys create --role %s: exit %d: %s", role, code, errb.String())
	}
	m := credRE.FindStringSubmatch(out.String())
	if m == nil {
		return "", "", fmt.Errorf("keys create printed %q", out.String())
	}
	return m[1], m[2], nil
}

// start runs the replica until the test ends (SIGTERM then, exit 0 wanted).
func (s *replicaSet) start(t *testing.T, r *replicaProc) {
	t.Helper()
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
}

// client is an admin ECS client of one replica, without retries.
func (s *replicaSet) client(r *replicaProc) *ecs.Client {
	return ecs.New(ecs.Options{Region: "us-test-1", BaseEndpoint: aws.String(r.url()), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(s.adminID, s.adminSecret, ""), HTTPClient: awshttp.NewBuildableClient()})
}

// live returns clients of the replicas still running.
func (s *replicaSet) live() []*ecs.Client {
	var out []*ecs.Client
	for _, r := range s.reps {
		select {
		case <-r.exited:
		default:
			out = append(out, s.client(r))
		}
	}
	return out
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
	}
}

func intersect(a, b []string) []string {
	var out []string
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}
