package devmode_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/api/arn"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// lbLab is the e2e harness with two real agents, a load balancer, a
// target group and an HTTP listener on the endpoint, and berth-lb (the
// binary) serving them with HAProxy on a loopback port.
type lbLab struct {
	*e2e
	elb       *elb.Client
	lbArn, tg string
	url       string
	specs     []agentSpec
	arns      []string
	sessions  []func()

	// berth-lb, the binary, and its process while it runs.
	lbBin, lbConf string
	lbOut         *lockedBuffer
	lbCmd         *exec.Cmd
	lbDone        chan struct{}
}

// startBerthLB starts berth-lb on the lab's configuration.
func (l *lbLab) startBerthLB(t *testing.T) {
	t.Helper()
	cmd := exec.Command(l.lbBin, "--config", l.lbConf)
	cmd.Stdout, cmd.Stderr = l.lbOut, l.lbOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	l.lbCmd, l.lbDone = cmd, done
}

// stopBerthLB sends sig to berth-lb (SIGKILL after 10 s) and waits for it.
func (l *lbLab) stopBerthLB(sig syscall.Signal) {
	if l.lbCmd == nil {
		return
	}
	_ = l.lbCmd.Process.Signal(sig)
	select {
	case <-l.lbDone:
	case <-time.After(10 * time.Second):
		_ = l.lbCmd.Process.Kill()
		<-l.lbDone
	}
	l.lbCmd = nil
}

// lbWait bounds every wait of these tests: it tells a hang from slowness
// and is no timing assertion (HAProxy checks every 5 s, AWS's minimum).
const lbWait = 3 * time.Minute

func newLBLab(t *testing.T) *lbLab {
	return newLBLabTuned(t, nil, nil)
}

// newLBLabTuned is newLBLab with the endpoint's options changed by tune
// and the agents' by spec.
func newLBLabTuned(t *testing.T, tune func(*devmode.EndpointOptions), spec func(*agentSpec)) *lbLab {
	if testing.Short() {
		t.Skip("integration test with agents, containers and HAProxy (-short)")
	}
	testenv.RequireBinaries(t, "haproxy")
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	e := newE2ETuned(t, acs.Options{}, tune)
	l := &lbLab{e2e: e}
	for range 2 {
		s := e.spec()
		if spec != nil {
			spec(&s)
		}
		arn, _, stop := e.runAgent(s)
		l.specs, l.arns, l.sessions = append(l.specs, s), append(l.arns, arn), append(l.sessions, stop)
	}
	ctx := context.Background()
	id, secret, err := e.ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.elb = elb.New(elb.Options{Region: region, BaseEndpoint: aws.String(e.ep.URL), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
	lb, err := l.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-berth"}})
	if err != nil {
		t.Fatal(err)
	}
	l.lbArn = aws.ToString(lb.LoadBalancers[0].LoadBalancerArn)
	port := freeLoopbackPort(t)
	l.tg = l.targetGroup(t, "web", "/", port)
	l.url = fmt.Sprintf("http://127.0.0.1:%d/", port)

	// berth-lb, the binary, with its own lb key.
	lbID, lbSecret, err := e.ep.Keys.Create(auth.RoleLB, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "berth-lb")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/lb").CombinedOutput(); err != nil {
		t.Fatalf("build berth-lb: %v\n%s", err, out)
	}
	runDir, err := os.MkdirTemp("", "blb") // short: HAProxy's sockets live in it
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "lb.toml")
	toml := fmt.Sprintf("endpoint = %q\nregion = %q\naccess_key_id = %q\nsecret_access_key = %q\nload_balancers = [\"web\"]\n"+
		"bind_address = \"127.0.0.1\"\nhaproxy = %q\nrun_dir = %q\npoll_interval = \"200ms\"\nmetrics_interval = \"1s\"\n", e.ep.URL, region, lbID, lbSecret, haproxy, runDir)
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	l.lbBin, l.lbConf, l.lbOut = bin, conf, &lockedBuffer{}
	l.startBerthLB(t)
	t.Cleanup(func() {
		l.stopBerthLB(syscall.SIGTERM)
		// berth-lb leaves HAProxy serving by design; the test ends it.
		if b, err := os.ReadFile(filepath.Join(runDir, "web", "haproxy.pid")); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(50 * time.Millisecond)
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		os.RemoveAll(runDir)
		if t.Failed() {
			t.Logf("berth-lb output:\n%s", l.lbOut.String())
		}
	})
	return l
}

// targetGroup creates an HTTP target group checking path every 5 s
// (healthy after 2, unhealthy after 2), draining for 3 s, behind a new
// listener of the load balancer on port.
func (l *lbLab) targetGroup(t *testing.T, name, path string, port int) string {
	t.Helper()
	ctx := context.Background()
	tg, err := l.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(name), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumInstance,
		HealthCheckPath: aws.String(path), HealthCheckIntervalSeconds: aws.Int32(5), HealthCheckTimeoutSeconds: aws.Int32(2),
		HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	if _, err := l.elb.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(arn),
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("3")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.elb.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(l.lbArn), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(int32(port)), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}
	return arn
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// createService runs service name of td behind tg.
func (l *lbLab) createService(t *testing.T, name, td, tg string, desired int32) {
	t.Helper()
	_, err := l.admin.CreateService(context.Background(), &ecs.CreateServiceInput{Cluster: aws.String("default"), ServiceName: aws.String(name),
		TaskDefinition: aws.String(td), DesiredCount: aws.Int32(desired),
		LoadBalancers: []types.LoadBalancer{{TargetGroupArn: aws.String(tg), ContainerName: aws.String("web"), ContainerPort: aws.Int32(80)}}})
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	t.Cleanup(func() {
		_, _ = l.admin.DeleteService(context.Background(), &ecs.DeleteServiceInput{Cluster: aws.String("default"), Service: aws.String(name), Force: aws.Bool(true)})
	})
}

func (l *lbLab) service(t *testing.T, name string) types.Service {
	t.Helper()
	out, err := l.admin.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{name}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("DescribeServices: %v", err)
	}
	return out.Services[0]
}

// targets is DescribeTargetHealth: state by "<instance id>:<port>".
func (l *lbLab) targets(t *testing.T, tg string) map[string]string {
	t.Helper()
	out, err := l.elb.DescribeTargetHealth(context.Background(), &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
	if err != nil {
		t.Fatalf("DescribeTargetHealth: %v", err)
	}
	m := map[string]string{}
	for _, d := range out.TargetHealthDescriptions {
		m[fmt.Sprintf("%s:%d", aws.ToString(d.Target.Id), aws.ToInt32(d.Target.Port))] = string(d.TargetHealth.State)
	}
	return m
}

// serviceTasks are the service's tasks desired RUNNING.
func (l *lbLab) serviceTasks(t *testing.T, name string) []types.Task {
	t.Helper()
	ctx := context.Background()
	lt, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default"), ServiceName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.TaskArns) == 0 {
		return nil
	}
	dt, err := l.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("default"), Tasks: lt.TaskArns})
	if err != nil {
		t.Fatal(err)
	}
	return dt.Tasks
}

// settled says whether the service runs exactly desired tasks, all
// RUNNING, of one deployment that completed, each registered and healthy
// in tg and nothing else registered there.
func (l *lbLab) settled(t *testing.T, name, tg string, desired int) func() (bool, string) {
	return func() (bool, string) {
		svc := l.service(t, name)
		tasks := l.serviceTasks(t, name)
		h := l.targets(t, tg)
		why := fmt.Sprintf("deployments %d (%s), running %d, tasks %d, targets %v", len(svc.Deployments),
			svc.Deployments[0].RolloutState, svc.RunningCount, len(tasks), h)
		if len(svc.Deployments) != 1 || svc.Deployments[0].RolloutState != types.DeploymentRolloutStateCompleted ||
			len(tasks) != desired || len(h) != desired {
			return false, why
		}
		for _, task := range tasks {
			if aws.ToString(task.LastStatus) != "RUNNING" || h[taskTarget(task)] != "healthy" {
				return false, why
			}
		}
		return true, why
	}
}

func taskTarget(task types.Task) string {
	return fmt.Sprintf("%s:%d", arn.ResourceID(aws.ToString(task.ContainerInstanceArn)), testenv.FirstHostPort(task))
}

func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(lbWait)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// lbLoad sends requests through HAProxy one after another (bounded in
// count and time, loopback only) and counts the answers.
type lbLoad struct {
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	ok, fail int
	errs     []string
	answers  []lbAnswer
}

// lbAnswer is one request answered: the id of the task that served it
// ("task ..." from the page webTaskDef writes) and when it was sent.
type lbAnswer struct {
	id   string
	sent time.Time
}

// startLBLoad sends requests for the page, which names the task serving it.
func startLBLoad(t *testing.T, url string) *lbLoad {
	return startLBLoadOf(t, url, "task ", 1)
}

// startSlowLoad keeps workers requests to the slow CGI (a second each)
// in flight through HAProxy: a task stopped before its target drained
// cuts them.
func startSlowLoad(t *testing.T, url string) *lbLoad {
	return startLBLoadOf(t, url+"cgi-bin/slow", "slow task ", 3)
}

// startLBLoadOf runs workers clients whose answers must start with prefix;
// the rest of an answer after "slow " is the id of the task that served it.
func startLBLoadOf(t *testing.T, url, prefix string, workers int) *lbLoad {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	ld := &lbLoad{cancel: cancel, done: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ld.run(ctx, c, url, prefix)
		}()
	}
	go func() {
		wg.Wait()
		close(ld.done)
	}()
	t.Cleanup(func() { ld.stop() })
	return ld
}

// run sends requests one after another until ctx ends.
func (ld *lbLoad) run(ctx context.Context, c *http.Client, url, prefix string) {
	for i := 0; i < 1_000_000 && ctx.Err() == nil; i++ {
		sent := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		status, body := 0, ""
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, body = resp.StatusCode, string(b)
		}
		if ctx.Err() != nil {
			return
		}
		ld.mu.Lock()
		if err != nil || status != http.StatusOK || !strings.HasPrefix(body, prefix) || !strings.HasSuffix(body, "\n") {
			ld.fail++
			if len(ld.errs) < 10 {
				ld.errs = append(ld.errs, fmt.Sprintf("sent %s, answered %s: %d %q %v", sent.Format("15:04:05.000"),
					time.Now().Format("15:04:05.000"), status, body, err))
			}
		} else {
			ld.ok++
			ld.answers = append(ld.answers, lbAnswer{strings.TrimSpace(strings.TrimPrefix(body, "slow ")), sent})
		}
		ld.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

func (ld *lbLoad) stop() (ok, fail int) {
	ld.cancel()
	<-ld.done
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.ok, ld.fail
}

// noFailures stops the load and fails the test on any failed request.
func (ld *lbLoad) noFailures(t *testing.T, what string) {
	t.Helper()
	ok, fail := ld.stop()
	t.Logf("%s: %d requests answered, %d failed", what, ok, fail)
	if fail != 0 || ok == 0 {
		t.Errorf("%s: %d of %d requests failed; first: %v", what, fail, ok+fail, ld.errs)
	}
}

// webTaskDef registers a revision of the web service: busybox httpd
// under a shell that exits at SIGTERM, as an application without a
// graceful shutdown does, so a stop cuts the requests in flight unless
// the task's targets drained first.
// The page it serves names the task: "task " and a random id.
func (l *lbLab) webTaskDef() string {
	return l.taskDef("web", 0, "/bin/sh", "-c", "trap 'exit 0' TERM; echo \"task $(cut -c1-13 /proc/sys/kernel/random/uuid)\" >/srv/index.html; "+
		"/bin/httpd -f -v -p 80 -h /srv & wait")
}

// deploy updates the web service to task definition td.
func (l *lbLab) deploy(t *testing.T, td string) {
	t.Helper()
	if _, err := l.admin.UpdateService(context.Background(), &ecs.UpdateServiceInput{Cluster: aws.String("default"),
		Service: aws.String("web"), TaskDefinition: aws.String(td)}); err != nil {
		t.Fatal(err)
	}
}

// waitDeployed waits until the web service settled on two tasks of td.
func (l *lbLab) waitDeployed(t *testing.T, what, td string) {
	t.Helper()
	waitUntil(t, what, func() (bool, string) {
		ok, why := l.settled(t, "web", l.tg, 2)()
		for _, task := range l.serviceTasks(t, "web") {
			ok = ok && aws.ToString(task.TaskDefinitionArn) == td
		}
		return ok, why
	})
}

// TestServiceBehindHAProxy runs a service of two real containers behind
// berth-lb's HAProxy and sends requests through it continuously while the
// service is deployed anew, scaled 2 → 6 → 2, has a task stopped with
// StopTask, loses a container to kill -9 and loses an instance to
// draining. Slow requests (a second each) are in flight whenever tasks are
// stopped: they are answered because each task's targets drain before its
// stop reaches the agent. Each answer names the task that served it: that
// task's target must have read healthy in DescribeTargetHealth when the
// request was sent (healthWatch, lbwho_test.go).
func TestServiceBehindHAProxy(t *testing.T) {
	l := newLBLab(t)
	ctx := context.Background()
	v1 := l.webTaskDef()
	l.createService(t, "web", v1, l.tg, 2)
	waitUntil(t, "2 healthy targets", l.settled(t, "web", l.tg, 2))
	// Every answer below must come from a task healthy at the time.
	w := l.watchHealth(t, "web", l.tg)
	checked := func(t *testing.T, what string, lds ...*lbLoad) {
		t.Helper()
		for i, ld := range lds {
			name := what
			if i > 0 {
				name += ", slow requests"
			}
			ld.noFailures(t, name)
			w.answeredByHealthy(t, name, ld)
		}
	}

	t.Run("rolling deployment", func(t *testing.T) {
		ld, slow := startLBLoad(t, l.url), startSlowLoad(t, l.url)
		v2 := l.webTaskDef()
		l.deploy(t, v2)
		l.waitDeployed(t, "v2 settled", v2)
		checked(t, "rolling deployment", ld, slow)
	})

	t.Run("scale 2 to 6 to 2", func(t *testing.T) {
		ld, slow := startLBLoad(t, l.url), startSlowLoad(t, l.url)
		for _, n := range []int32{6, 2} {
			if _, err := l.admin.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("default"), Service: aws.String("web"), DesiredCount: aws.Int32(n)}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, fmt.Sprintf("%d healthy targets", n), l.settled(t, "web", l.tg, int(n)))
		}
		checked(t, "scale 2 → 6 → 2", ld, slow)
	})

	t.Run("StopTask drains first", func(t *testing.T) {
		ld, slow := startLBLoad(t, l.url), startSlowLoad(t, l.url)
		time.Sleep(time.Second) // slow requests in flight on both tasks
		victim := l.serviceTasks(t, "web")[0]
		out, err := l.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("default"), Task: victim.TaskArn,
			Reason: aws.String("stopped by the test")})
		if err != nil {
			t.Fatal(err)
		}
		// As ECS: deregistered and draining before its agent is told.
		if st := aws.ToString(out.Task.LastStatus); st != "DEACTIVATING" {
			t.Errorf("StopTask answered lastStatus %s, want DEACTIVATING", st)
		}
		stopped := l.waitReplaced(t, "the stopped task replaced", victim)
		if stopped.StopCode != types.TaskStopCodeUserInitiated || aws.ToString(stopped.StoppedReason) != "stopped by the test" {
			t.Errorf("stopped with %s %q", stopped.StopCode, aws.ToString(stopped.StoppedReason))
		}
		checked(t, "StopTask", ld, slow)
	})

	t.Run("drain an instance", func(t *testing.T) {
		ld, slow := startLBLoad(t, l.url), startSlowLoad(t, l.url)
		// Drain the instance with more of the service's tasks.
		per := map[string]int{}
		for _, task := range l.serviceTasks(t, "web") {
			per[aws.ToString(task.ContainerInstanceArn)]++
		}
		drained, kept := l.arns[0], l.arns[1]
		if per[kept] > per[drained] {
			drained, kept = kept, drained
		}
		if _, err := l.admin.UpdateContainerInstancesState(ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String("default"),
			ContainerInstances: []string{drained}, Status: types.ContainerInstanceStatusDraining}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "all tasks on the other instance", func() (bool, string) {
			ok, why := l.settled(t, "web", l.tg, 2)()
			for _, task := range l.serviceTasks(t, "web") {
				ok = ok && aws.ToString(task.ContainerInstanceArn) == kept
			}
			return ok, why
		})
		checked(t, "instance drained", ld, slow)
		if _, err := l.admin.UpdateContainerInstancesState(ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String("default"),
			ContainerInstances: []string{drained}, Status: types.ContainerInstanceStatusActive}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("berth-lb killed during a deployment", func(t *testing.T) {
		ld, slow := startLBLoad(t, l.url), startSlowLoad(t, l.url)
		l.stopBerthLB(syscall.SIGKILL)
		v := l.webTaskDef()
		l.deploy(t, v)
		// With no data plane reporting, the new tasks' targets stay
		// initial: the old tasks keep serving through the HAProxy that
		// outlived berth-lb, and the deployment waits.
		waitUntil(t, "the new tasks registered", func() (bool, string) {
			h := l.targets(t, l.tg)
			return len(h) == 4, fmt.Sprintf("targets %v", h)
		})
		time.Sleep(12 * time.Second) // more than two health-check intervals
		if svc := l.service(t, "web"); len(svc.Deployments) != 2 {
			t.Errorf("deployment went on without berth-lb: %d deployments (%s)", len(svc.Deployments), svc.Deployments[0].RolloutState)
		}
		for k, st := range l.targets(t, l.tg) {
			if st == "draining" {
				t.Errorf("target %s draining while no data plane reported the new tasks healthy", k)
			}
		}
		l.startBerthLB(t)
		l.waitDeployed(t, "the deployment completed after berth-lb returned", v)
		checked(t, "berth-lb killed during a deployment", ld, slow)
	})

	t.Run("berth-lb restarted during a deployment", func(t *testing.T) {
		ld := startLBLoad(t, l.url)
		v := l.webTaskDef()
		l.deploy(t, v)
		waitUntil(t, "the new tasks registered", func() (bool, string) {
			h := l.targets(t, l.tg)
			return len(h) == 4, fmt.Sprintf("targets %v", h)
		})
		l.stopBerthLB(syscall.SIGTERM)
		l.startBerthLB(t)
		l.waitDeployed(t, "the deployment completed", v)
		checked(t, "berth-lb restarted during a deployment", ld)
	})

	t.Run("kill -9 of a task's container", func(t *testing.T) {
		tasks := l.serviceTasks(t, "web")
		victim := tasks[0]
		ld := startLBLoad(t, l.url)
		time.Sleep(time.Second)
		l.killContainer(t, victim)
		killed := time.Now()
		stopped := l.waitReplaced(t, "the killed task replaced", victim)
		// An ALB sends a target that just died requests until its health
		// checks fail or the service deregisters it, and answers those
		// 502. HAProxy retries a refused connection on another target
		// (berth-lb's option redispatch), so none fails here.
		t.Logf("killed %s, task STOPPED %s", killed.Format("15:04:05.000"), aws.ToTime(stopped.StoppedAt).Format("15:04:05.000"))
		checked(t, "kill -9 of a task's container", ld)
	})

	t.Run("unhealthy target replaced", func(t *testing.T) {
		sick := l.targetGroup(t, "sick", "/missing", freeLoopbackPort(t))
		l.createService(t, "sick", l.taskDef("sick", 0), sick, 1)
		reason := "Task failed ELB health checks in (target-group " + sick + ")"
		waitUntil(t, "a task stopped for failing its ELB health checks", func() (bool, string) {
			out, err := l.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default"), ServiceName: aws.String("sick"), DesiredStatus: types.DesiredStatusStopped})
			if err != nil {
				return false, err.Error()
			}
			for _, a := range out.TaskArns {
				if task, err := l.describe(ctx, a); err == nil && aws.ToString(task.StoppedReason) == reason {
					return true, ""
				}
			}
			return false, fmt.Sprintf("stopped %v, targets %v", out.TaskArns, l.targets(t, sick))
		})
		found := false
		for _, ev := range l.service(t, "sick").Events {
			found = found || strings.Contains(aws.ToString(ev.Message), "due to (reason Health checks failed with these codes: [404])")
		}
		if !found {
			t.Errorf("no unhealthy event: %+v", l.service(t, "sick").Events)
		}
		// The service keeps trying: a replacement was placed.
		waitUntil(t, "a replacement task", func() (bool, string) { return len(l.serviceTasks(t, "sick")) == 1, "" })
	})
}

// waitReplaced waits until the web service settled on two tasks without
// victim and returns victim as it stopped.
func (l *lbLab) waitReplaced(t *testing.T, what string, victim types.Task) types.Task {
	t.Helper()
	waitUntil(t, what, func() (bool, string) {
		ok, why := l.settled(t, "web", l.tg, 2)()
		for _, task := range l.serviceTasks(t, "web") {
			ok = ok && aws.ToString(task.TaskArn) != aws.ToString(victim.TaskArn)
		}
		return ok, why
	})
	stopped, err := l.describe(context.Background(), aws.ToString(victim.TaskArn))
	if err != nil {
		t.Fatal(err)
	}
	return stopped
}

// killContainer SIGKILLs the task's container process, as kill -9 does.
func (l *lbLab) killContainer(t *testing.T, task types.Task) {
	t.Helper()
	id := aws.ToString(task.Containers[0].RuntimeId)
	cli := l.cd.Client(t)
	for _, s := range l.specs {
		ctx := namespaced(t, s.NS)
		c, err := cli.LoadContainer(ctx, id)
		if err != nil {
			continue
		}
		ct, err := c.Task(ctx, nil)
		if err != nil {
			t.Fatalf("task of container %s: %v", id, err)
		}
		if err := syscall.Kill(int(ct.Pid()), syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", ct.Pid(), err)
		}
		return
	}
	t.Fatalf("container %s not found in the agents' namespaces", id)
}
