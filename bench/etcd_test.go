package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// storeSetup is one way of running the endpoint: bbolt, or n replicas on
// etcd; clients spread requests over its replicas.
type storeSetup struct {
	name    string
	clients []*ecs.Client
}

// openSetup opens the endpoint's replicas (one for bbolt), an admin key,
// a cluster with three large instances (no agents: tasks are placed
// regardless) and a task definition.
func openSetup(b *testing.B, name string, dataRoot string, etcd *cluster.EtcdOptions, replicas int) *storeSetup {
	b.Helper()
	s := &storeSetup{name: name}
	var id, secret string
	for i := range replicas {
		o := cluster.Options{InsecureHTTP: true, Region: "us-test-1", AccountID: "123456789012",
			DataDir: filepath.Join(dataRoot, fmt.Sprintf("%s-%d", name, i)), NoAgentSessions: true}
		if etcd != nil {
			eo := *etcd
			eo.Replica = fmt.Sprintf("%s-%d", name, i)
			o.Etcd = &eo
		}
		ep, err := cluster.Open(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ep.Close() })
		if i == 0 {
			if id, secret, err = ep.Keys().Create(auth.RoleAdmin, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		s.clients = append(s.clients, benchClient(serveBench(b, ep.Handler()), id, secret))
	}
	ctx := context.Background()
	c := s.clients[0]
	if _, err := c.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("httpd"), Cpu: 1, Memory: aws.Int32(8)}}}); err != nil {
		b.Fatal(err)
	}
	for range 3 {
		if _, err := c.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("bench"),
			TotalResources: []types.Resource{
				{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1 << 30},
				{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1 << 30},
			}}); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// runTasks sends calls RunTask requests of count tasks each from workers
// goroutines, spread over the setup's replicas, and returns how long they
// took and the task ARNs.
func (s *storeSetup) runTasks(b *testing.B, calls, count, workers int) (time.Duration, []string) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	var arns []string
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(calls) {
					return
				}
				c := s.clients[(int(i)+w)%len(s.clients)]
				out, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String("web"), Count: aws.Int32(int32(count))})
				if err != nil || len(out.Tasks) != count {
					failed.Store(fmt.Sprintf("%s: RunTask: %v (%d tasks)", s.name, err, len(out.Tasks)))
					return
				}
				mu.Lock()
				for _, t := range out.Tasks {
					arns = append(arns, aws.ToString(t.TaskArn))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	if len(arns) != calls*count {
		b.Fatalf("%s: %d tasks placed, want %d", s.name, len(arns), calls*count)
	}
	return took, arns
}

// describeP99 describes one task at a time, n times, round-robin over the
// replicas, and returns the 99th percentile latency.
func (s *storeSetup) describeP99(b *testing.B, arns []string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	var ds []time.Duration
	for i := range n {
		start := time.Now()
		out, err := s.clients[i%len(s.clients)].DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("bench"), Tasks: []string{arns[i%len(arns)]}})
		if err != nil || len(out.Tasks) != 1 {
			b.Fatalf("%s: DescribeTasks: %v", s.name, err)
		}
		ds = append(ds, time.Since(start))
	}
	return percentile(ds, 99)
}

// BenchmarkClusterStores compares the endpoint on bbolt (the baseline)
// with one and with three replicas on a three-member etcd, in the same
// run: RunTask requests/s (one task each) and placements/s (ten tasks a
// request) from 16 concurrent clients spread over the replicas, and the
// p99 latency of DescribeTasks of one task. Every placement goes to the
// same cluster's three instances, so concurrent RunTasks contend as they
// would in production. The etcd members and the bbolt data directory are
// both on /dev/shm, so the figures compare the stores, not the disks.
func BenchmarkClusterStores(b *testing.B) {
	etcd := testenv.Etcd(b, 3)
	shm, err := os.MkdirTemp("/dev/shm", "berth-bench-stores-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	kek := filepath.Join(shm, "cluster.kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{5}, 32), 0o600); err != nil {
		b.Fatal(err)
	}
	etcdOpts := func(prefix string) *cluster.EtcdOptions {
		return &cluster.EtcdOptions{Endpoints: etcd.Endpoints, Prefix: prefix, KEKFile: kek, MaxTxnOps: 1024}
	}
	setups := []*storeSetup{
		openSetup(b, "bbolt", shm, nil, 1),
		openSetup(b, "etcd-1", shm, etcdOpts("/bench/one/"), 1),
		openSetup(b, "etcd-3", shm, etcdOpts("/bench/three/"), 3),
	}
	const calls, workers = 200, 16
	reqs := make([]time.Duration, len(setups))
	places := make([]time.Duration, len(setups))
	p99 := make([][]time.Duration, len(setups))
	b.ResetTimer()
	for range b.N {
		for i, s := range setups {
			took, arns := s.runTasks(b, calls, 1, workers)
			reqs[i] += took
			took, _ = s.runTasks(b, calls/10, 10, workers)
			places[i] += took
			p99[i] = append(p99[i], s.describeP99(b, arns, 200))
		}
	}
	b.StopTimer()
	for i, s := range setups {
		b.ReportMetric(float64(calls*b.N)/reqs[i].Seconds(), s.name+"-runtask/s")
		b.ReportMetric(float64(calls*b.N)/places[i].Seconds(), s.name+"-placements/s")
		b.ReportMetric(float64(slices.Max(p99[i]).Microseconds())/1000, s.name+"-describe-p99-ms")
		if i > 0 {
			b.ReportMetric(float64(reqs[0])/float64(reqs[i]), s.name+"-runtask-x-bbolt")
		}
	}
}
