package walkthrough_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/lb"
)

// webTaskDefJSON is a bridge task definition whose container serves a page
// naming itself ("walk <random id>") with busybox httpd on port 80,
// published on a dynamic host port (hostPort 0).
func webTaskDefJSON(t *testing.T, family, image string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"family":      family,
		"networkMode": "bridge",
		"containerDefinitions": []map[string]any{{
			"name": "web", "image": image, "memory": 32, "essential": true,
			"command": []string{"/bin/sh", "-c", "trap 'exit 0' TERM; mkdir -p /www; " +
				`echo "walk $(cut -c1-8 /proc/sys/kernel/random/uuid)" >/www/index.html; httpd -f -p 80 -h /www & wait`},
			"portMappings": []map[string]any{{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runBerthLB runs berth-lb (pkg/lb's daemon, in this process) for load
// balancer name of dev mode's endpoint, with dev mode's admin key (dev mode
// makes no lb key; the data-plane API takes an admin key too), HAProxy
// listening on 127.0.0.1. At cleanup it stops berth-lb and then the HAProxy
// it leaves serving by design.
func (l *devLab) runBerthLB(t *testing.T, name string) {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	runDir, err := os.MkdirTemp("", "blbwalk") // short: HAProxy's sockets live in it
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := lb.ParseConfig("walk-lb.toml", fmt.Appendf(nil, "endpoint = %q\nregion = %q\naccess_key_id = %q\nsecret_access_key = %q\n"+
		"load_balancers = [%q]\nbind_address = \"127.0.0.1\"\nhaproxy = %q\nrun_dir = %q\npoll_interval = \"250ms\"\n",
		l.env["AWS_ENDPOINT_URL_ECS"], region, l.adminID, l.adminSecret, name, haproxy, runDir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lb.Run(ctx, lb.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("berth-lb: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(runDir, name, "haproxy.pid")); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		os.RemoveAll(runDir)
	})
}

// TestCLILoadBalancedService attaches a service to a load balancer with the
// AWS CLI alone, as an operator would on ECS: `aws elbv2` creates the load
// balancer, an instance target group and an HTTP listener; `aws ecs`
// registers a bridge task definition with a dynamic host port and creates a
// service with --load-balancers. berth-lb serves the load balancer with
// HAProxy. `aws ecs wait services-stable` and `aws elbv2 wait
// target-in-service` return once both targets are healthy, and the
// listener answers through HAProxy from both tasks. A second round of
// describes shows what was written (the service's loadBalancers, the
// targets at the tasks' host ports, the group used by the load balancer).
// Then everything is deleted and the describes find nothing.
func TestCLILoadBalancedService(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the AWS CLI, dev mode and HAProxy")
	}
	testenv.RequireBinaries(t, "haproxy")
	l := startDevLab(t)
	aws := testenv.AWSCLI(t, l.proxyURL, region, l.adminID, l.adminSecret)
	get := func(m any, path ...any) any {
		t.Helper()
		for _, p := range path {
			switch k := p.(type) {
			case string:
				mm, _ := m.(map[string]any)
				m = mm[k]
			case int:
				a, _ := m.([]any)
				if k >= len(a) {
					return nil
				}
				m = a[k]
			}
		}
		return m
	}
	str := func(m any, path ...any) string { s, _ := get(m, path...).(string); return s }
	_, portText, _ := strings.Cut(testenv.FreeLoopbackAddr(t), "127.0.0.1:")
	port, _ := strconv.Atoi(portText)

	lbOut := aws(t, true, "elbv2", "create-load-balancer", "--name", "walk-web", "--subnets", "subnet-berth")
	lbArn := str(lbOut, "LoadBalancers", 0, "LoadBalancerArn")
	tgOut := aws(t, true, "elbv2", "create-target-group", "--name", "walk-web", "--protocol", "HTTP", "--port", "80",
		"--vpc-id", "vpc-berth", "--target-type", "instance", "--health-check-path", "/",
		"--health-check-interval-seconds", "5", "--health-check-timeout-seconds", "2",
		"--healthy-threshold-count", "2", "--unhealthy-threshold-count", "2")
	tgArn := str(tgOut, "TargetGroups", 0, "TargetGroupArn")
	aws(t, true, "elbv2", "modify-target-group-attributes", "--target-group-arn", tgArn,
		"--attributes", "Key=deregistration_delay.timeout_seconds,Value=2")
	lnOut := aws(t, true, "elbv2", "create-listener", "--load-balancer-arn", lbArn, "--protocol", "HTTP",
		"--port", strconv.Itoa(port), "--default-actions", "Type=forward,TargetGroupArn="+tgArn)
	lnArn := str(lnOut, "Listeners", 0, "ListenerArn")
	l.runBerthLB(t, "walk-web")

	td := aws(t, true, "ecs", "register-task-definition", "--cli-input-json", webTaskDefJSON(t, "walk-web", l.image))
	tdArn := str(td, "taskDefinition", "taskDefinitionArn")
	// Bad input first: a port the task definition does not map is ECS's
	// error naming the member, and no service is made.
	e := aws(t, false, "ecs", "create-service", "--cluster", "default", "--service-name", "walk-web", "--task-definition", "walk-web:1",
		"--desired-count", "2", "--load-balancers", "targetGroupArn="+tgArn+",containerName=web,containerPort=8080")
	if msg := e["error"].(string); !strings.Contains(msg, "(InvalidParameterException)") || !strings.Contains(msg, "containerPort") {
		t.Errorf("create-service with an unmapped container port: %s", msg)
	}
	aws(t, true, "ecs", "create-service", "--cluster", "default", "--service-name", "walk-web", "--task-definition", "walk-web:1",
		"--desired-count", "2", "--health-check-grace-period-seconds", "10",
		"--load-balancers", "targetGroupArn="+tgArn+",containerName=web,containerPort=80")
	aws(t, true, "ecs", "wait", "services-stable", "--cluster", "default", "--services", "walk-web")
	aws(t, true, "elbv2", "wait", "target-in-service", "--target-group-arn", tgArn)

	// The listener answers through HAProxy, from both tasks.
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	pages := map[string]int{}
	c := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 200 && len(pages) < 2; i++ {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s through HAProxy: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "walk ") {
			t.Fatalf("GET %s through HAProxy: %d %q", url, resp.StatusCode, b)
		}
		pages[string(b)]++
	}
	if len(pages) != 2 {
		t.Errorf("%s answered from %d tasks, want 2: %v", url, len(pages), pages)
	}
	t.Logf("%s answered from both tasks: %v", url, pages)

	// The second describes show what was written.
	svc := aws(t, true, "ecs", "describe-services", "--cluster", "default", "--services", "walk-web")
	if got := get(svc, "services", 0, "loadBalancers"); fmt.Sprint(got) != fmt.Sprintf("[map[containerName:web containerPort:80 targetGroupArn:%s]]", tgArn) ||
		str(svc, "services", 0, "deployments", 0, "rolloutState") != "COMPLETED" || get(svc, "services", 0, "runningCount") != 2.0 ||
		get(svc, "services", 0, "healthCheckGracePeriodSeconds") != 10.0 {
		t.Errorf("describe-services: %v", svc)
	}
	tasks := aws(t, true, "ecs", "list-tasks", "--cluster", "default", "--service-name", "walk-web")
	arns, _ := get(tasks, "taskArns").([]any)
	want := map[string]bool{}
	for _, a := range arns {
		d := aws(t, true, "ecs", "describe-tasks", "--cluster", "default", "--tasks", a.(string))
		inst := str(d, "tasks", 0, "containerInstanceArn")
		want[fmt.Sprintf("%s:%v", inst[strings.LastIndex(inst, "/")+1:], get(d, "tasks", 0, "containers", 0, "networkBindings", 0, "hostPort"))] = true
	}
	health := aws(t, true, "elbv2", "describe-target-health", "--target-group-arn", tgArn)
	descs, _ := get(health, "TargetHealthDescriptions").([]any)
	for _, d := range descs {
		k := fmt.Sprintf("%s:%v", str(d, "Target", "Id"), get(d, "Target", "Port"))
		if !want[k] || str(d, "TargetHealth", "State") != "healthy" {
			t.Errorf("target %s %s: not one of the tasks' instance:hostPort %v or not healthy", k, str(d, "TargetHealth", "State"), want)
		}
		delete(want, k)
	}
	if len(arns) != 2 || len(want) != 0 {
		t.Errorf("%d tasks; not registered: %v (describe-target-health %v)", len(arns), want, health)
	}
	tg := aws(t, true, "elbv2", "describe-target-groups", "--target-group-arns", tgArn)
	if fmt.Sprint(get(tg, "TargetGroups", 0, "LoadBalancerArns")) != "["+lbArn+"]" || get(tg, "TargetGroups", 0, "HealthCheckIntervalSeconds") != 5.0 {
		t.Errorf("describe-target-groups: %v", tg)
	}
	ln := aws(t, true, "elbv2", "describe-listeners", "--load-balancer-arn", lbArn)
	if get(ln, "Listeners", 0, "Port") != float64(port) || str(ln, "Listeners", 0, "DefaultActions", 0, "TargetGroupArn") != tgArn {
		t.Errorf("describe-listeners: %v", ln)
	}

	// Everything deleted again: the service first (its tasks drain from
	// the target group and stop), then the load balancing records.
	aws(t, true, "ecs", "delete-service", "--cluster", "default", "--service", "walk-web", "--force")
	aws(t, true, "ecs", "wait", "services-inactive", "--cluster", "default", "--services", "walk-web")
	aws(t, true, "elbv2", "delete-listener", "--listener-arn", lnArn)
	aws(t, true, "elbv2", "delete-load-balancer", "--load-balancer-arn", lbArn)
	aws(t, true, "elbv2", "delete-target-group", "--target-group-arn", tgArn)
	aws(t, true, "ecs", "deregister-task-definition", "--task-definition", tdArn)
	if d := aws(t, true, "elbv2", "describe-load-balancers"); len(get(d, "LoadBalancers").([]any)) != 0 {
		t.Errorf("load balancers after the deletes: %v", d)
	}
	if d := aws(t, true, "elbv2", "describe-target-groups"); len(get(d, "TargetGroups").([]any)) != 0 {
		t.Errorf("target groups after the deletes: %v", d)
	}
	// The tasks stop once drained; bounded, not a timing assertion.
	for i := 0; ; i++ {
		d := aws(t, true, "ecs", "list-tasks", "--cluster", "default")
		if len(get(d, "taskArns").([]any)) == 0 {
			break
		}
		if i == 60 {
			t.Fatalf("tasks left a minute after the service's deletion: %v", d)
		}
		time.Sleep(time.Second)
	}
	l.stop(t)
}

// testLog writes berth-lb's log lines to the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
