package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/console"
)

// Console sizes: the operator with 1,000 tasks in 50 services.
const (
	consoleServices        = 50
	consoleTasksPerService = 20
	consoleInstances       = 10
)

// consoleBench is an endpoint holding 1,000 tasks in 50 services, a
// browser-like HTTP client signed in to its console, and a stub server
// that answers every GET with canned bytes: the raw baseline (one loopback
// HTTP round trip of a response that size, nothing read or rendered).
type consoleBench struct {
	url, stubURL string
	client       *http.Client
	setStub      func([]byte)
	// task is the id of one of the tasks; tasks are all their ARNs.
	task  string
	tasks []string
	admin *ecs.Client
}

func newConsoleBench(b *testing.B) *consoleBench {
	b.Helper()
	ctx := context.Background()
	ep, err := cluster.Open(ctx, cluster.Options{Listen: "127.0.0.1:0", InsecureHTTP: true, Region: "us-test-1",
		AccountID: "123456789012", DataDir: b.TempDir(), NoAgentSessions: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ep.Close() })
	cb := &consoleBench{url: serveBench(b, ep.Handler())}
	var mu sync.Mutex
	var canned []byte
	cb.setStub = func(p []byte) { mu.Lock(); canned = p; mu.Unlock() }
	cb.stubURL = serveBench(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		p := canned
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(p)
	}))
	adminID, adminSecret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	agentID, agentSecret, err := ep.Keys().Create(auth.RoleAgent, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	admin, agent := benchClient(cb.url, adminID, adminSecret), benchClient(cb.url, agentID, agentSecret)
	cb.admin = admin
	cb.fill(b, ctx, admin, agent)
	cb.signIn(b, adminID, adminSecret)
	return cb
}

// fill creates the cluster "big": instances, 50 services (desired 0, so
// that no controller is needed) and 20 RUNNING tasks in each one's group.
func (cb *consoleBench) fill(b *testing.B, ctx context.Context, admin, agent *ecs.Client) {
	b.Helper()
	if _, err := admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("big")}); err != nil {
		b.Fatal(err)
	}
	for range consoleInstances {
		if _, err := agent.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("big"),
			TotalResources: []types.Resource{
				{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1 << 20},
				{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1 << 20},
			}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(16), Cpu: 16}}}); err != nil {
		b.Fatal(err)
	}
	for i := range consoleServices {
		name := fmt.Sprintf("svc-%02d", i)
		if _, err := admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("big"), ServiceName: aws.String(name),
			TaskDefinition: aws.String("app"), DesiredCount: aws.Int32(0)}); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < consoleTasksPerService; n += 10 {
			run, err := admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("big"), TaskDefinition: aws.String("app"),
				Count: aws.Int32(10), Group: aws.String("service:" + name)})
			if err != nil || len(run.Failures) > 0 {
				b.Fatalf("RunTask: %v %+v", err, run)
			}
			for _, t := range run.Tasks {
				if _, err := agent.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("big"),
					Task: t.TaskArn, Status: aws.String("RUNNING")}); err != nil {
					b.Fatal(err)
				}
				cb.task = aws.ToString(t.TaskArn)[len(aws.ToString(t.TaskArn))-32:]
				cb.tasks = append(cb.tasks, aws.ToString(t.TaskArn))
			}
		}
	}
}

// signIn signs in as the sign-in page's script does.
func (cb *consoleBench) signIn(b *testing.B, id, secret string) {
	b.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	cb.client = &http.Client{Jar: jar}
	page := cb.get(b, cb.client, cb.url+"/console/signin")
	m := regexp.MustCompile(`name="nonce" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		b.Fatalf("sign-in page without a challenge:\n%s", page)
	}
	nonce := string(m[1])
	resp, err := cb.client.PostForm(cb.url+"/console/signin", url.Values{"keyId": {id}, "nonce": {nonce},
		"proof": {console.Proof(secret, nonce, id)}})
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/" {
		b.Fatalf("sign in: %s at %s", resp.Status, resp.Request.URL)
	}
}

func (cb *consoleBench) get(b *testing.B, c *http.Client, u string) []byte {
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	p, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	return p
}

// BenchmarkConsolePages fetches each page of the console over loopback
// HTTP, signed in, with 1,000 tasks in 50 services, against the stub
// serving the same bytes: "page-ms" is the time to a whole page, "x-stub"
// the ratio to the raw round trip.
func BenchmarkConsolePages(b *testing.B) {
	cb := newConsoleBench(b)
	stubClient := &http.Client{}
	instances, err := cb.admin.ListContainerInstances(context.Background(), &ecs.ListContainerInstancesInput{Cluster: aws.String("big")})
	if err != nil || len(instances.ContainerInstanceArns) == 0 {
		b.Fatalf("ListContainerInstances: %v", err)
	}
	instance := instances.ContainerInstanceArns[0][strings.LastIndex(instances.ContainerInstanceArns[0], "/")+1:]
	for _, p := range []struct{ name, path string }{
		{"clusters", "/console/"},
		{"cluster", "/console/clusters/big"},
		{"service", "/console/clusters/big/services/svc-07"},
		{"service-live", "/console/clusters/big/services/svc-07?part=live"},
		{"task", "/console/clusters/big/tasks/" + cb.task},
		{"instance", "/console/clusters/big/instances/" + instance},
		{"tasks-list", "/console/clusters/big/tasks"},
		{"tasks-filtered", "/console/clusters/big/tasks?group=service:svc-07&status=RUNNING"},
		{"services-list", "/console/clusters/big/services?q=svc-4"},
	} {
		b.Run(p.name, func(b *testing.B) {
			page := cb.get(b, cb.client, cb.url+p.path)
			cb.setStub(page)
			var epDur, stubDur time.Duration
			for b.Loop() {
				start := time.Now()
				cb.get(b, cb.client, cb.url+p.path)
				mid := time.Now()
				cb.get(b, stubClient, cb.stubURL+p.path)
				epDur += mid.Sub(start)
				stubDur += time.Since(mid)
			}
			b.ReportMetric(float64(len(page)), "page-bytes")
			b.ReportMetric(float64(epDur.Microseconds())/1000/float64(b.N), "page-ms")
			b.ReportMetric(float64(stubDur.Microseconds())/1000/float64(b.N), "stub-ms")
			b.ReportMetric(float64(epDur)/float64(stubDur), "x-stub")
		})
	}
}

// churnRate is how many task state changes a second the churn makes.
const churnRate = 50

// churn stops the cluster's tasks one by one, churnRate a second (each a
// StopTask: a task record and its index written in one transaction),
// until ctx ends; the returned func waits for it and reports how many it
// stopped.
func (cb *consoleBench) churn(ctx context.Context) func() int {
	done := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(time.Second / churnRate)
		defer tick.Stop()
		for _, arn := range cb.tasks {
			select {
			case <-ctx.Done():
				done <- n
				return
			case <-tick.C:
			}
			if _, err := cb.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("big"), Task: aws.String(arn)}); err == nil {
				n++
			}
		}
		done <- n
	}()
	return func() int { return <-done }
}

// BenchmarkConsoleLiveUnderChurn fetches a service page's live part (its
// 2 s poll) while 50 tasks a second change state in the same cluster:
// "page-ms" against the stub's round trip of the same bytes ("x-stub"),
// and "changes/s" the rate the churn kept up.
func BenchmarkConsoleLiveUnderChurn(b *testing.B) {
	cb := newConsoleBench(b)
	stubClient := &http.Client{}
	path := "/console/clusters/big/services/svc-07?part=live"
	cb.setStub(cb.get(b, cb.client, cb.url+path))
	ctx, cancel := context.WithCancel(context.Background())
	wait := cb.churn(ctx)
	var epDur, stubDur time.Duration
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		cb.get(b, cb.client, cb.url+path)
		t1 := time.Now()
		cb.get(b, stubClient, cb.stubURL+path)
		epDur += t1.Sub(t0)
		stubDur += time.Since(t1)
	}
	elapsed := time.Since(start)
	cancel()
	changes := wait()
	b.ReportMetric(float64(epDur.Microseconds())/1000/float64(b.N), "page-ms")
	b.ReportMetric(float64(stubDur.Microseconds())/1000/float64(b.N), "stub-ms")
	b.ReportMetric(float64(epDur)/float64(stubDur), "x-stub")
	b.ReportMetric(float64(changes)/elapsed.Seconds(), "changes/s")
}
