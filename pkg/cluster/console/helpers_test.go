package console_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/console"
)

const testRegion = "us-test-1"

// fixture is a real cluster endpoint serving plain HTTP on loopback, with a
// cluster "web", one registered instance and a task definition "app".
type fixture struct {
	ep                *cluster.Endpoint
	url               string
	adminID, adminKey string
	admin, agent      *ecs.Client
	instanceArn       string
	taskDefinitionArn string
	// logs is an agent's CloudWatch Logs client (putLogs makes it).
	logs *cloudwatchlogs.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, endpointOptions(t))
}

// endpointOptions are the fixture's endpoint's: plain HTTP on loopback,
// bbolt in a temporary data directory, no agent sessions (the agent's
// part is played by SubmitTaskStateChange calls).
func endpointOptions(t *testing.T) cluster.Options {
	return cluster.Options{Listen: "127.0.0.1:0", InsecureHTTP: true,
		Region: testRegion, AccountID: "123456789012", DataDir: t.TempDir(), NoAgentSessions: true}
}

// serve opens an endpoint with o and serves it until the test ends; it
// returns the endpoint and its URL.
func serve(t *testing.T, o cluster.Options) (*cluster.Endpoint, string) {
	t.Helper()
	ep, err := cluster.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open endpoint: %v", err)
	}
	ln, err := ep.Listen()
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := ep.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return ep, "http://" + ln.Addr().(*net.TCPAddr).String()
}

// newFixtureWith is newFixture on an endpoint opened with o.
func newFixtureWith(t *testing.T, o cluster.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	ep, u := serve(t, o)
	f := &fixture{ep: ep, url: u}
	f.adminID, f.adminKey = f.newKey(t, auth.RoleAdmin)
	f.admin = f.client(f.adminID, f.adminKey)
	agentID, agentKey := f.newKey(t, auth.RoleAgent)
	f.agent = f.client(agentID, agentKey)
	if _, err := f.admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("web")}); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	ri, err := f.agent.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{Cluster: aws.String("web"),
		// The agent's own address, which network bindings link to.
		Attributes: []types.Attribute{{Name: aws.String("berth.host-address"), Value: aws.String("127.0.0.1")}},
		TotalResources: []types.Resource{
			{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 4096},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 8192},
		}})
	if err != nil {
		t.Fatalf("RegisterContainerInstance: %v", err)
	}
	f.instanceArn = aws.ToString(ri.ContainerInstance.ContainerInstanceArn)
	td, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("app"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64), Cpu: 64,
			Essential: aws.Bool(true)}}})
	if err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	f.taskDefinitionArn = aws.ToString(td.TaskDefinition.TaskDefinitionArn)
	return f
}

func (f *fixture) newKey(t *testing.T, role auth.Role) (string, string) {
	t.Helper()
	id, secret, err := f.ep.Keys().Create(role, time.Now())
	if err != nil {
		t.Fatalf("create %s key: %v", role, err)
	}
	return id, secret
}

func (f *fixture) client(id, secret string) *ecs.Client {
	return ecs.New(ecs.Options{Region: testRegion, BaseEndpoint: aws.String(f.url),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  awshttp.NewBuildableClient(), Retryer: aws.NopRetryer{}})
}

// markRunning plays the agent: every task of the service that is still
// being provisioned reports RUNNING. It returns how many did.
func (f *fixture) markRunning(t *testing.T, service string) int {
	t.Helper()
	ctx := context.Background()
	list, err := f.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("web"), ServiceName: aws.String(service)})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(list.TaskArns) == 0 {
		return 0
	}
	desc, err := f.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("web"), Tasks: list.TaskArns})
	if err != nil {
		t.Fatalf("DescribeTasks: %v", err)
	}
	n := 0
	for _, task := range desc.Tasks {
		if aws.ToString(task.LastStatus) == "RUNNING" || aws.ToString(task.DesiredStatus) == "STOPPED" {
			continue
		}
		if _, err := f.agent.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("web"),
			Task: task.TaskArn, Status: aws.String("RUNNING")}); err != nil {
			t.Fatalf("SubmitTaskStateChange RUNNING: %v", err)
		}
		n++
	}
	return n
}

// createService creates a service of app and waits until desired tasks
// were placed and report RUNNING.
func (f *fixture) createService(t *testing.T, name string, desired int32) {
	t.Helper()
	f.createServiceOf(t, name, "app", desired)
}

// createServiceOf is createService with another task definition.
func (f *fixture) createServiceOf(t *testing.T, name, taskDefinition string, desired int32) {
	t.Helper()
	if _, err := f.admin.CreateService(context.Background(), &ecs.CreateServiceInput{Cluster: aws.String("web"),
		ServiceName: aws.String(name), TaskDefinition: aws.String(taskDefinition), DesiredCount: aws.Int32(desired)}); err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	f.waitRunning(t, name, desired)
}

// waitRunning marks the service's new tasks RUNNING until want run.
func (f *fixture) waitRunning(t *testing.T, service string, want int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.markRunning(t, service)
		d, err := f.admin.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: aws.String("web"), Services: []string{service}})
		if err != nil || len(d.Services) != 1 {
			t.Fatalf("DescribeServices: %v %+v", err, d)
		}
		if d.Services[0].RunningCount == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: %d tasks running after 30s, want %d", service, d.Services[0].RunningCount, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signInHTTP signs in as a browser would, with Go's HTTP client: the
// challenge from the sign-in page, the HMAC proof. It returns the client
// (holding the session cookie) and the answer to the sign-in.
func (f *fixture) signInHTTP(t *testing.T, id, secret string) (*http.Client, *http.Response, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	nonce := challenge(t, c, f.url)
	resp, err := c.PostForm(f.url+"/console/signin", url.Values{"keyId": {id}, "nonce": {nonce}, "proof": {console.Proof(secret, nonce, id)}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return c, resp, string(b)
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return string(b)
}

// csrfOf returns the CSRF token a signed-in page carries.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no CSRF token:\n%s", page)
	}
	return m[1]
}

// post sends a form to the console as c, with header set.
func post(t *testing.T, c *http.Client, u string, form url.Values, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
