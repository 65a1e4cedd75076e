package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/servicectl"
)

// replica is one berth-cluster replica on the shared etcd, served on
// loopback, with its own simulated agents (their ECS calls and ACS
// sessions go to this replica).
type replica struct {
	ep     *cluster.Endpoint
	url    string
	fleet  *simfleet.Fleet
	cancel context.CancelFunc
	served chan error
	killed bool
}

// startReplica opens a replica on etcd with its own data directory. Its
// log (Info and above: the requests that failed or were refused, the
// store's quorum changes) is printed when the test fails.
func startReplica(t *testing.T, name string, eo cluster.EtcdOptions) *replica {
	t.Helper()
	eo.Replica = name
	log := &testenv.LockedBuffer{}
	t.Cleanup(func() { // registered first: runs after the replica closed
		if t.Failed() {
			t.Logf("replica %s log:\n%s", name, log.String())
		}
	})
	ep, err := cluster.Open(context.Background(), cluster.Options{
		Listen: "127.0.0.1:0", InsecureHTTP: true, Region: testRegion, AccountID: testAccount,
		DataDir: t.TempDir(), Etcd: &eo, ACS: acs.Options{RedeliverAfter: time.Second},
		Logger:   slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Services: servicectl.Timing{Interval: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("open replica %s: %v", name, err)
	}
	ln, err := ep.Listen()
	if err != nil {
		ep.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{ep: ep, url: "http://" + ln.Addr().(*net.TCPAddr).String(), cancel: cancel, served: make(chan error, 1)}
	go func() { r.served <- ep.Serve(ctx, ln) }()
	fleet, err := simfleet.Start(ctx, simfleet.Options{Endpoint: r.url, Region: testRegion, Cluster: "rep",
		CPU: 1024, Memory: 4096, StartDelay: 20 * time.Millisecond, StopDelay: 20 * time.Millisecond,
		NewAgentKey: func() (string, string, error) { return ep.Keys().Create(auth.RoleAgent, time.Now()) }})
	if err != nil {
		t.Fatal(err)
	}
	r.fleet = fleet
	t.Cleanup(func() {
		fleet.Close()
		cancel()
		err := <-r.served
		if err != nil && !r.killed {
			t.Errorf("replica %s: serve: %v", name, err)
		}
		if err := ep.Close(); err != nil && !r.killed {
			t.Errorf("replica %s: close: %v", name, err)
		}
	})
	return r
}

// kill cuts the replica off as a crash would: its etcd connection closes
// without resigning the leadership or revoking its lease, so the others
// must wait for the lease to expire. Its serving fails then.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.killed = true
	if err := r.ep.Store().Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.served:
		r.served <- err // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("a replica whose store closed kept serving")
	}
}

func (r *replica) client(id, secret string) *ecs.Client {
	return ecs.New(ecs.Options{Region: testRegion, BaseEndpoint: aws.String(r.url),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  awshttp.NewBuildableClient()})
}

// TestReplicasOnEtcd runs three replicas on three real etcd members, each
// with two simulated agents: the ECS API answers alike on every replica,
// 200 concurrent RunTask calls spread over them never over-commit an
// instance, a task placed through one replica reaches an agent connected
// to another, and when the leader dies another runs the service
// controller within seconds.
func TestReplicasOnEtcd(t *testing.T) {
	etcd := testenv.Etcd(t, 3)
	kek := filepath.Join(t.TempDir(), "cluster.kek")
	if err := os.WriteFile(kek, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	eo := cluster.EtcdOptions{Endpoints: etcd.Endpoints, Prefix: "/berth/replicas-test/", KEKFile: kek,
		MaxTxnOps: testenv.EtcdMaxTxnOps, LeaseTTL: 2 * time.Second}
	var reps []*replica
	for i := 0; i < 3; i++ {
		reps = append(reps, startReplica(t, fmt.Sprintf("r%d", i), eo))
	}
	ctx := context.Background()
	// A key created through one replica signs requests to all of them.
	adminID, adminSecret, err := reps[0].ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var admins []*ecs.Client
	for _, r := range reps {
		admins = append(admins, r.client(adminID, adminSecret))
	}
	if _, err := admins[1].CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("rep")}); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if _, err := r.fleet.Add(ctx, 2, nil); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("RevisionsAreUnique", func(t *testing.T) {
		// 30 registrations of one family, spread over the replicas at once.
		revs := make([]int, 0, 30)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := admins[i%3].RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("rev"),
					ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(16)}}})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				revs = append(revs, int(out.TaskDefinition.Revision))
			}()
		}
		wg.Wait()
		sort.Ints(revs)
		for i, r := range revs {
			if r != i+1 {
				t.Fatalf("revisions = %v, want 1..30 each once", revs)
			}
		}
	})

	mustRegister := func(in *ecs.RegisterTaskDefinitionInput) {
		t.Helper()
		if _, err := admins[0].RegisterTaskDefinition(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	// "mem" fits four times per instance by CPU; "port" once, by its
	// static host port.
	mustRegister(&ecs.RegisterTaskDefinitionInput{Family: aws.String("mem"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("c"), Image: aws.String("busybox"), Cpu: 256, Memory: aws.Int32(256)}}})
	mustRegister(&ecs.RegisterTaskDefinitionInput{Family: aws.String("port"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(16),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(8080)}}}}})

	t.Run("ConcurrentRunTaskNeverOvercommits", func(t *testing.T) {
		type result struct {
			family  string
			placed  int
			reasons []string
			err     error
		}
		results := make(chan result, 200)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < 200; i++ {
			family := "mem"
			if i%4 == 0 {
				family = "port"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := admins[i%3].RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("rep"), TaskDefinition: aws.String(family)})
				res := result{family: family, err: err}
				if err == nil {
					res.placed = len(out.Tasks)
					for _, f := range out.Failures {
						res.reasons = append(res.reasons, aws.ToString(f.Reason))
					}
				}
				results <- res
			}()
		}
		wg.Wait()
		close(results)
		t.Logf("200 concurrent RunTask calls over 3 replicas took %v", time.Since(start).Round(time.Millisecond))
		placed := map[string]int{}
		for res := range results {
			if res.err != nil {
				t.Fatalf("RunTask %s: %v", res.family, res.err)
			}
			placed[res.family] += res.placed
			for _, r := range res.reasons {
				if !strings.HasPrefix(r, "RESOURCE:") {
					t.Errorf("RunTask %s failure %q, want RESOURCE:*", res.family, r)
				}
			}
		}
		// Six instances of 1024 CPU units: 24 "mem" tasks, and 6 "port"
		// tasks (one per instance, by its host port). More would be an
		// over-commit, fewer a lost placement.
		if placed["mem"] != 24 || placed["port"] != 6 {
			t.Errorf("placed %v, want mem:24 port:6", placed)
		}
		checkInstances(t, ctx, admins[2])
	})

	t.Run("SameStateOnEveryReplica", func(t *testing.T) {
		var views []string
		for _, a := range admins {
			views = append(views, clusterView(t, ctx, a))
		}
		if views[0] != views[1] || views[0] != views[2] {
			t.Fatalf("replicas disagree:\nr0: %s\nr1: %s\nr2: %s", views[0], views[1], views[2])
		}
	})

	t.Run("PlacedThroughOneDeliveredThroughAnother", func(t *testing.T) {
		// Every task of the race runs on its agent, though two thirds were
		// placed through another replica than the agent's.
		all := runningOnAgents(reps)
		list, err := admins[0].ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("rep"), MaxResults: aws.Int32(100)})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "every placed task runs on its agent", func() bool {
			all = runningOnAgents(reps)
			for _, arn := range list.TaskArns {
				if !all[arn] {
					return false
				}
			}
			return true
		})
		// StopTask through r2 of a task on an agent connected to r1.
		target := reps[1].fleet.Instances()[0]
		running := target.Running()
		if len(running) == 0 {
			t.Fatal("no task runs on r1's first agent")
		}
		if _, err := admins[2].StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("rep"), Task: aws.String(running[0])}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the agent on r1 stops the task StopTask named on r2", func() bool {
			return !slices.Contains(target.Running(), running[0])
		})
		waitUntil(t, "r0 describes the task STOPPED", func() bool {
			d, err := admins[0].DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("rep"), Tasks: running[:1]})
			return err == nil && len(d.Tasks) == 1 && aws.ToString(d.Tasks[0].LastStatus) == "STOPPED"
		})
	})

	t.Run("LeaderDiesAnotherTakesOver", func(t *testing.T) {
		// Make room: stop every task.
		for _, r := range reps {
			for _, in := range r.fleet.Instances() {
				for _, arn := range in.Running() {
					if _, err := admins[0].StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("rep"), Task: aws.String(arn)}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		waitUntil(t, "every task stopped", func() bool { return len(runningOnAgents(reps)) == 0 })
		leader, err := reps[0].ep.Leader()
		if err != nil || leader == "" {
			t.Fatalf("leader = %q, %v", leader, err)
		}
		var dead *replica
		var alive []*replica
		for _, r := range reps {
			if r.ep.Replica() == leader {
				dead = r
			} else {
				alive = append(alive, r)
			}
		}
		if dead == nil {
			t.Fatalf("leader %q is none of the replicas", leader)
		}
		aliveAdmin := alive[0].client(adminID, adminSecret)
		if _, err := aliveAdmin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("rep"), ServiceName: aws.String("svc"),
			TaskDefinition: aws.String("mem"), DesiredCount: aws.Int32(2)}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the service runs 2 tasks", func() bool { return runningCount(t, ctx, aliveAdmin, "svc") == 2 })
		killed := time.Now()
		dead.kill(t)
		var next string
		waitUntil(t, "another replica leads", func() bool {
			next, _ = alive[0].ep.Leader()
			return next != "" && next != leader
		})
		t.Logf("%s took over from %s %v after it died (lease 2s)", next, leader, time.Since(killed).Round(10*time.Millisecond))
		// The new leader clears the dead replica's agent sessions: their
		// instances show disconnected, so nothing more is placed there.
		var deadArns []string
		for _, in := range dead.fleet.Instances() {
			deadArns = append(deadArns, in.Arn)
		}
		waitUntil(t, "the dead replica's agents show disconnected", func() bool {
			d, err := aliveAdmin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("rep"), ContainerInstances: deadArns})
			if err != nil || len(d.ContainerInstances) != len(deadArns) {
				return false
			}
			for _, ci := range d.ContainerInstances {
				if ci.AgentConnected {
					return false
				}
			}
			return true
		})
		t.Logf("the dead replica's agents shown disconnected %v after it died", time.Since(killed).Round(10*time.Millisecond))
		// The new leader's service controller acts: scaled through the
		// other live replica, the service reaches 6 tasks, the new ones on
		// the live replicas' agents (tasks on the dead replica's instances
		// stay as ECS leaves tasks of a disconnected agent).
		if _, err := alive[1].client(adminID, adminSecret).UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("rep"),
			Service: aws.String("svc"), DesiredCount: aws.Int32(6)}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the service runs 6 tasks under the new leader", func() bool {
			lt, err := aliveAdmin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("rep"), ServiceName: aws.String("svc")})
			if err != nil || len(lt.TaskArns) != 6 {
				return false
			}
			dt, err := aliveAdmin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("rep"), Tasks: lt.TaskArns})
			if err != nil {
				return false
			}
			onAgents := runningOnAgents(reps)
			for _, task := range dt.Tasks {
				if !slices.Contains(deadArns, aws.ToString(task.ContainerInstanceArn)) && !onAgents[aws.ToString(task.TaskArn)] {
					return false
				}
			}
			return runningCount(t, ctx, aliveAdmin, "svc") == 6
		})
		t.Logf("service at 6 tasks %v after the leader died", time.Since(killed).Round(10*time.Millisecond))
	})
}

// checkInstances fails the test when an instance's tasks use more than it
// has, when its reported remaining resources are not its registered ones
// less its tasks', or when two of its tasks share a host port.
func checkInstances(t *testing.T, ctx context.Context, admin *ecs.Client) {
	t.Helper()
	for _, ci := range instancesOf(t, ctx, admin) {
		arn := aws.ToString(ci.ContainerInstanceArn)
		var taskArns []string
		for _, status := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			lt, err := admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("rep"), ContainerInstance: aws.String(arn),
				DesiredStatus: status, MaxResults: aws.Int32(100)})
			if err != nil {
				t.Fatal(err)
			}
			taskArns = append(taskArns, lt.TaskArns...)
		}
		cpu, mem := int32(0), int32(0)
		ports := map[int32]string{}
		if len(taskArns) > 0 {
			dt, err := admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("rep"), Tasks: taskArns})
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range dt.Tasks {
				if aws.ToString(task.LastStatus) == "STOPPED" {
					continue // its resources were given back
				}
				// The demand of the two task definitions (registered above).
				isPort := strings.Contains(aws.ToString(task.TaskDefinitionArn), "/port:")
				if isPort {
					mem += 16
				} else {
					cpu, mem = cpu+256, mem+256
				}
				if isPort {
					if other, dup := ports[8080]; dup {
						t.Errorf("instance %s: tasks %s and %s both hold host port 8080", arn, other, aws.ToString(task.TaskArn))
					}
					ports[8080] = aws.ToString(task.TaskArn)
				}
			}
		}
		regCPU, regMem := registered(ci, "CPU"), registered(ci, "MEMORY")
		if cpu > regCPU || mem > regMem {
			t.Errorf("instance %s over-committed: tasks use cpu %d memory %d of %d/%d", arn, cpu, mem, regCPU, regMem)
		}
		if remaining(ci, "CPU") != regCPU-cpu || remaining(ci, "MEMORY") != regMem-mem {
			t.Errorf("instance %s: remaining cpu %d memory %d, want %d and %d", arn, remaining(ci, "CPU"), remaining(ci, "MEMORY"), regCPU-cpu, regMem-mem)
		}
		if _, held := ports[8080]; held != slices.Contains(remainingPorts(ci), "8080") {
			t.Errorf("instance %s: port 8080 held by a task: %v; listed in remaining PORTS: %v", arn, held, remainingPorts(ci))
		}
	}
}

// instancesOf describes every container instance of the cluster "rep".
func instancesOf(t *testing.T, ctx context.Context, admin *ecs.Client) []types.ContainerInstance {
	t.Helper()
	list, err := admin.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("rep")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := admin.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("rep"), ContainerInstances: list.ContainerInstanceArns})
	if err != nil {
		t.Fatal(err)
	}
	return d.ContainerInstances
}

func registered(ci types.ContainerInstance, name string) int32 {
	for _, r := range ci.RegisteredResources {
		if aws.ToString(r.Name) == name {
			return r.IntegerValue
		}
	}
	return -1
}

func remainingPorts(ci types.ContainerInstance) []string {
	for _, r := range ci.RemainingResources {
		if aws.ToString(r.Name) == "PORTS" {
			return r.StringSetValue
		}
	}
	return nil
}

// clusterView is what one replica answers about the cluster: its counts,
// its instances' remaining resources, and its tasks.
func clusterView(t *testing.T, ctx context.Context, admin *ecs.Client) string {
	t.Helper()
	dc, err := admin.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{"rep"}})
	if err != nil || len(dc.Clusters) != 1 {
		t.Fatalf("describe cluster: %v", err)
	}
	c := dc.Clusters[0]
	var b strings.Builder
	fmt.Fprintf(&b, "instances=%d running=%d pending=%d;", c.RegisteredContainerInstancesCount, c.RunningTasksCount, c.PendingTasksCount)
	for _, ci := range instancesOf(t, ctx, admin) {
		fmt.Fprintf(&b, " %s cpu=%d mem=%d connected=%v;", aws.ToString(ci.ContainerInstanceArn), remaining(ci, "CPU"), remaining(ci, "MEMORY"), ci.AgentConnected)
	}
	lt, err := admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("rep"), MaxResults: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lt.TaskArns)
	fmt.Fprintf(&b, " tasks=%v", lt.TaskArns)
	return b.String()
}

// runningOnAgents is the set of tasks the replicas' agents run.
func runningOnAgents(reps []*replica) map[string]bool {
	out := map[string]bool{}
	for _, r := range reps {
		if r.killed {
			continue
		}
		for _, in := range r.fleet.Instances() {
			for _, arn := range in.Running() {
				out[arn] = true
			}
		}
	}
	return out
}

func runningCount(t *testing.T, ctx context.Context, admin *ecs.Client, service string) int32 {
	d, err := admin.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rep"), Services: []string{service}})
	if err != nil || len(d.Services) != 1 {
		return -1
	}
	return d.Services[0].RunningCount
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
