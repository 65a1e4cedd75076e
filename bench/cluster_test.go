package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"

	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/ecsapi"
)

// clusterBench is a berth-cluster endpoint and a stub HTTP server on
// loopback, both driven by the real AWS SDK ECS client. The stub answers
// every request with canned bytes, so it is the raw baseline: the SDK's
// signing and decoding plus one loopback HTTP round trip, without
// verification, store or encoding on the server side.
type clusterBench struct {
	b        *testing.B
	endpoint *ecs.Client
	stub     *ecs.Client
	// setStub sets the canned response body.
	setStub func([]byte)
}

func serveBench(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	b.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// bufferedBodyClient hands the transport a plain in-memory request body.
// With aws-sdk-go-v2 service/ecs v1.104.1 (smithy-go v1.28.8) the SDK's own
// request body makes net/http's write loop close the connection while a
// large response (100 tasks, ~130 KB) is still being read ("use of closed
// network connection" with status 200; reproduced against a stub server
// that serves canned bytes, so not an endpoint fault). The default retryer
// hides it at the cost of backoff sleeps, which would swamp the figures.
type bufferedBodyClient struct{ inner *awshttp.BuildableClient }

func (c bufferedBodyClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return c.inner.Do(req)
}

func benchClient(url, id, secret string) *ecs.Client {
	return ecs.New(ecs.Options{
		Region: "us-test-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  bufferedBodyClient{awshttp.NewBuildableClient()}, Retryer: aws.NopRetryer{},
	})
}

func newClusterBench(b *testing.B, cpu, memory int32) *clusterBench {
	b.Helper()
	// The benchmark's instance has no agent: tasks are placed regardless.
	ep, err := cluster.Open(context.Background(), cluster.Options{InsecureHTTP: true, Region: "us-test-1", AccountID: "123456789012",
		DataDir: b.TempDir(), NoAgentSessions: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ep.Close() })
	id, secret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var canned []byte
	stub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the request as a server must before answering.
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		body := canned
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write(body)
	})
	cb := &clusterBench{
		b:        b,
		endpoint: benchClient(serveBench(b, ep.Handler()), id, secret),
		stub:     benchClient(serveBench(b, stub), id, secret),
		setStub:  func(body []byte) { mu.Lock(); canned = body; mu.Unlock() },
	}
	ctx := context.Background()
	if _, err := cb.endpoint.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	if _, err := cb.endpoint.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("web"),
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("web"), Image: aws.String("httpd"), Cpu: 1, Memory: aws.Int32(8),
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80)}}},
			{Name: aws.String("sidecar"), Image: aws.String("busybox"), Cpu: 1, Memory: aws.Int32(8), Essential: aws.Bool(false)},
		},
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := cb.endpoint.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String("bench"),
		TotalResources: []types.Resource{
			{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: cpu},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: memory},
		},
	}); err != nil {
		b.Fatal(err)
	}
	return cb
}

// BenchmarkClusterDescribeTasks100 describes 100 two-container tasks in one
// DescribeTasks call, against the stub answering the same 100 tasks, and
// reports the ratio as "x-stub".
func BenchmarkClusterDescribeTasks100(b *testing.B) {
	cb := newClusterBench(b, 1<<20, 1<<20)
	ctx := context.Background()
	var arns []string
	for len(arns) < 100 {
		out, err := cb.endpoint.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String("web"), Count: aws.Int32(10)})
		if err != nil || len(out.Tasks) != 10 {
			b.Fatalf("RunTask: %v %v", out, err)
		}
		for _, t := range out.Tasks {
			arns = append(arns, *t.TaskArn)
		}
	}
	in := &ecs.DescribeTasksInput{Cluster: aws.String("bench"), Tasks: arns}
	first, err := cb.endpoint.DescribeTasks(ctx, in)
	if err != nil || len(first.Tasks) != 100 {
		b.Fatalf("DescribeTasks: %v", err)
	}
	canned, err := ecsapi.EncodeOutput(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	cb.setStub(canned)
	var epDur, stubDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := cb.stub.DescribeTasks(ctx, in); err != nil {
			b.Fatal(err)
		}
		stubDur += time.Since(start)
		start = time.Now()
		out, err := cb.endpoint.DescribeTasks(ctx, in)
		if err != nil || len(out.Tasks) != 100 {
			b.Fatalf("DescribeTasks: %v", err)
		}
		epDur += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(stubDur.Nanoseconds())/float64(b.N), "stub-ns/op")
	b.ReportMetric(float64(epDur.Nanoseconds())/float64(b.N), "berth-ns/op")
	b.ReportMetric(float64(epDur)/float64(stubDur), "x-stub")
}

// BenchmarkClusterRunTask places one task per RunTask request (first fit
// over one instance, one fsynced bbolt transaction) and reports requests
// per second, against the stub answering a canned one-task RunTask
// response, with the ratio as "x-stub".
func BenchmarkClusterRunTask(b *testing.B) {
	cb := newClusterBench(b, 1<<30, 1<<30)
	ctx := context.Background()
	in := cb.primeRunTask(ctx)
	var epDur, stubDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := cb.stub.RunTask(ctx, in()); err != nil {
			b.Fatal(err)
		}
		stubDur += time.Since(start)
		start = time.Now()
		out, err := cb.endpoint.RunTask(ctx, in())
		if err != nil || len(out.Tasks) != 1 {
			b.Fatalf("RunTask: %v %v", out, err)
		}
		epDur += time.Since(start)
	}
	b.StopTimer()
	if err := cb.placed(ctx, b.N+1); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/epDur.Seconds(), "berth-req/s")
	b.ReportMetric(float64(b.N)/stubDur.Seconds(), "stub-req/s")
	b.ReportMetric(float64(epDur)/float64(stubDur), "x-stub")
}

// BenchmarkClusterRunTaskConcurrent measures RunTask throughput with
// concurrent clients (issue 16: RunTask not bound by one fsync per
// request): each round sends the same number of RunTasks, one new input
// each, from the same number of goroutines to the stub and then to the
// endpoint, and the wall time of each side's rounds is summed. With one
// writer per bbolt transaction every RunTask waits for its own fsync;
// with group commit the RunTasks that arrive during a commit share the
// next one.
func BenchmarkClusterRunTaskConcurrent(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			cb := newClusterBench(b, 1<<30, 1<<30)
			ctx := context.Background()
			in := cb.primeRunTask(ctx)
			// round sends n RunTasks from clients goroutines and returns
			// the wall time.
			round := func(c *ecs.Client, n int) (time.Duration, error) {
				var wg sync.WaitGroup
				errs := make(chan error, clients)
				next := make(chan struct{}, n)
				for range n {
					next <- struct{}{}
				}
				close(next)
				start := time.Now()
				for range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range next {
							out, err := c.RunTask(ctx, in())
							if err == nil && len(out.Tasks) != 1 {
								err = fmt.Errorf("RunTask placed %d tasks, want 1: %v", len(out.Tasks), out.Failures)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				d := time.Since(start)
				close(errs)
				return d, <-errs
			}
			var epDur, stubDur time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(b.N-done, 10*clients)
				d, err := round(cb.stub, n)
				if err != nil {
					b.Fatal(err)
				}
				stubDur += d
				if d, err = round(cb.endpoint, n); err != nil {
					b.Fatal(err)
				}
				epDur += d
				done += n
			}
			b.StopTimer()
			if err := cb.placed(ctx, b.N+1); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/epDur.Seconds(), "berth-req/s")
			b.ReportMetric(float64(b.N)/stubDur.Seconds(), "stub-req/s")
			b.ReportMetric(float64(epDur)/float64(stubDur), "x-stub")
		})
	}
}

// BenchmarkClusterRunTaskStored measures one client's RunTask latency with
// 10, 1,000 and 10,000 tasks stored in the cluster (stopped ones, as a
// cluster accumulates them within ECS's hour of visibility), against the
// stub answering a canned one-task RunTask response in the same run
// ("x-stub"). Each timed RunTask is followed by an untimed StopTask and the
// STOPPED state change its agent would send, so the running count stays at
// one. A write that walked the cluster's tasks
// would grow with the stored count; placement reads only the unstopped
// tasks' index.
func BenchmarkClusterRunTaskStored(b *testing.B) {
	for _, stored := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) {
			cb := newClusterBench(b, 1<<30, 1<<30)
			ctx := context.Background()
			// A new input each time: the SDK fills in the client token of
			// the input it is given, and a second call with that token
			// would be an idempotent replay.
			in := func() *ecs.RunTaskInput {
				return &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String("web")}
			}
			// stop stops a task and reports it STOPPED as its agent would
			// (the benchmark's instance has none).
			stop := func(arn *string) {
				if _, err := cb.endpoint.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("bench"), Task: arn}); err != nil {
					b.Fatalf("StopTask: %v", err)
				}
				if _, err := cb.endpoint.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("bench"), Task: arn,
					Status: aws.String("STOPPED"), Reason: aws.String("bench")}); err != nil {
					b.Fatalf("SubmitTaskStateChange: %v", err)
				}
			}
			for n := 0; n < stored; n += 10 {
				out, err := cb.endpoint.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String("web"), Count: aws.Int32(10)})
				if err != nil || len(out.Tasks) != 10 {
					b.Fatalf("RunTask: %v %v", out, err)
				}
				for _, t := range out.Tasks {
					stop(t.TaskArn)
				}
			}
			first, err := cb.endpoint.RunTask(ctx, in())
			if err != nil || len(first.Tasks) != 1 {
				b.Fatalf("RunTask: %v %v", first, err)
			}
			stop(first.Tasks[0].TaskArn)
			canned, err := ecsapi.EncodeOutput(ctx, first)
			if err != nil {
				b.Fatal(err)
			}
			cb.setStub(canned)
			var ep, stub []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := cb.stub.RunTask(ctx, in()); err != nil {
					b.Fatal(err)
				}
				stub = append(stub, time.Since(start))
				start = time.Now()
				out, err := cb.endpoint.RunTask(ctx, in())
				if err != nil || len(out.Tasks) != 1 {
					b.Fatalf("RunTask: %v %v", out, err)
				}
				ep = append(ep, time.Since(start))
				b.StopTimer()
				stop(out.Tasks[0].TaskArn)
				b.StartTimer()
			}
			b.StopTimer()
			if err := cb.placed(ctx, 0); err != nil {
				b.Fatal(err)
			}
			med := func(d []time.Duration) time.Duration { return percentile(d, 50) }
			b.ReportMetric(float64(med(ep).Microseconds())/1000, "berth-p50-ms")
			b.ReportMetric(float64(percentile(ep, 99).Microseconds())/1000, "berth-p99-ms")
			b.ReportMetric(float64(med(stub).Microseconds())/1000, "stub-p50-ms")
			b.ReportMetric(float64(med(ep))/float64(med(stub)), "x-stub")
		})
	}
}

// primeRunTask runs one RunTask of the "web" task definition on the
// endpoint, sets its response as the stub's canned answer, and returns the
// input maker: a new input each time, since the SDK fills in the client
// token of the input it is given, and a second call with that token would
// be an idempotent replay rather than a placement.
func (cb *clusterBench) primeRunTask(ctx context.Context) func() *ecs.RunTaskInput {
	cb.b.Helper()
	in := func() *ecs.RunTaskInput {
		return &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String("web")}
	}
	first, err := cb.endpoint.RunTask(ctx, in())
	if err != nil || len(first.Tasks) != 1 {
		cb.b.Fatalf("RunTask: %v %v", first, err)
	}
	canned, err := ecsapi.EncodeOutput(ctx, first)
	if err != nil {
		cb.b.Fatal(err)
	}
	cb.setStub(canned)
	return in
}

// placed checks that the cluster holds want running tasks: each RunTask
// placed one.
func (cb *clusterBench) placed(ctx context.Context, want int) error {
	n := 0
	p := ecs.NewListTasksPaginator(cb.endpoint, &ecs.ListTasksInput{Cluster: aws.String("bench")})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		n += len(out.TaskArns)
	}
	if n != want {
		return fmt.Errorf("%d tasks running, want %d (one per RunTask)", n, want)
	}
	return nil
}

// percentile returns the p-th percentile (nearest rank) of ds; ds is
// sorted in place.
func percentile(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	i := (len(ds)*p + 99) / 100
	return ds[max(0, min(len(ds)-1, i-1))]
}
