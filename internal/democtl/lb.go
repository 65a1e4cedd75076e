package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// demoName names the demo's load balancer, target group and service.
const demoName = "berth-demo"

// elbClient is an ELBv2 client for dev mode's endpoint: DIR/env sets the
// ECS endpoint, which serves ELBv2 too (AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2
// wins when set).
func elbClient(cfg aws.Config) *elb.Client {
	return elb.NewFromConfig(cfg, func(o *elb.Options) {
		if os.Getenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2") == "" {
			o.BaseEndpoint = aws.String(os.Getenv("AWS_ENDPOINT_URL_ECS"))
		}
	})
}

// setUpLB creates the demo's load balancer, its target group (HTTP health
// checks of / every 5 s, AWS's shortest; healthy after 2; connections drain
// for 2 s) and an HTTP listener on 127.0.0.1:port, and writes berth-lb's
// configuration for it to confPath: dev mode's endpoint and admin key (a
// production berth-lb has a key of its own, role lb), HAProxy's files under
// runDir.
func setUpLB(ctx context.Context, port int, runDir, confPath string) error {
	// HAProxy would fail to bind later, with the reason only in berth-lb's log.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("the load balancer's port 127.0.0.1:%d is taken (set BERTH_DEMO_LB_PORT to another): %w", port, err)
	}
	ln.Close()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		return fmt.Errorf("berth-lb needs HAProxy (Debian's haproxy package; make demo installs it): %w", err)
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration (did you source DIR/env?): %w", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("read dev mode's admin key: %w", err)
	}
	c := elbClient(cfg)
	say("creating load balancer %s, target group %s and an HTTP listener on 127.0.0.1:%d", demoName, demoName, port)
	lb, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String(demoName), Subnets: []string{"subnet-berth"}})
	if err != nil {
		return fmt.Errorf("create load balancer: %w", err)
	}
	tg, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(demoName), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumInstance, HealthCheckPath: aws.String("/"),
		HealthCheckIntervalSeconds: aws.Int32(5), HealthCheckTimeoutSeconds: aws.Int32(2),
		HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		return fmt.Errorf("create target group: %w", err)
	}
	tgArn := tg.TargetGroups[0].TargetGroupArn
	if _, err := c.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: tgArn,
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("2")}}}); err != nil {
		return fmt.Errorf("set the target group's deregistration delay: %w", err)
	}
	if _, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(int32(port)),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgArn}}}); err != nil {
		return fmt.Errorf("create listener: %w", err)
	}
	conf := fmt.Sprintf("# berth-lb for make demo (written by berth-democtl lb)\nendpoint = %q\nregion = %q\n"+
		"access_key_id = %q\nsecret_access_key = %q\nload_balancers = [%q]\nbind_address = \"127.0.0.1\"\n"+
		"haproxy = %q\nrun_dir = %q\npoll_interval = \"250ms\"\n",
		os.Getenv("AWS_ENDPOINT_URL_ECS"), cfg.Region, creds.AccessKeyID, creds.SecretAccessKey, demoName, haproxy, runDir)
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write berth-lb's configuration: %w", err)
	}
	return nil
}

// targetGroupArn finds the demo's target group.
func targetGroupArn(ctx context.Context, cfg aws.Config) (string, error) {
	out, err := elbClient(cfg).DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{demoName}})
	if err != nil {
		return "", fmt.Errorf("find target group %s (berth-democtl lb makes it): %w", demoName, err)
	}
	return aws.ToString(out.TargetGroups[0].TargetGroupArn), nil
}

// serviceTasks are the demo service's tasks desired RUNNING.
func serviceTasks(ctx context.Context, client *ecs.Client) ([]types.Task, error) {
	lt, err := client.ListTasks(ctx, &ecs.ListTasksInput{ServiceName: aws.String(demoName)})
	if err != nil {
		return nil, fmt.Errorf("list the service's tasks: %w", err)
	}
	if len(lt.TaskArns) == 0 {
		return nil, nil
	}
	dt, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: lt.TaskArns})
	if err != nil {
		return nil, fmt.Errorf("describe the service's tasks: %w", err)
	}
	return dt.Tasks, nil
}

// waitRunning waits until the service runs n tasks, each RUNNING.
func waitRunning(ctx context.Context, client *ecs.Client, n int) ([]types.Task, error) {
	last := ""
	for {
		tasks, err := serviceTasks(ctx, client)
		if err != nil {
			return nil, err
		}
		running := 0
		var states []string
		for _, t := range tasks {
			states = append(states, taskID(aws.ToString(t.TaskArn))+" "+aws.ToString(t.LastStatus))
			if aws.ToString(t.LastStatus) == "RUNNING" {
				running++
			}
		}
		sort.Strings(states)
		if s := strings.Join(states, ", "); s != last && s != "" {
			say("tasks: %s", s)
			last = s
		}
		if running == n && len(tasks) == n {
			return tasks, nil
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitHealthy waits until target group tg has n targets, all healthy as
// the endpoint sees them (berth-lb reports HAProxy's checks: every 5 s,
// healthy after two). Only then do the tasks count as healthy for a
// deployment: replacing them earlier lets the service stop them before
// their replacements are healthy (ECS counts healthy tasks toward
// minimumHealthyPercent), and the URL would answer 503.
func waitHealthy(ctx context.Context, cfg aws.Config, tg string, n int) error {
	c := elbClient(cfg)
	deadline := time.Now().Add(2 * time.Minute)
	last := ""
	for {
		out, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
		if err != nil {
			return fmt.Errorf("describe target health: %w", err)
		}
		var states []string
		healthy := 0
		for _, d := range out.TargetHealthDescriptions {
			states = append(states, fmt.Sprintf("%d %s", aws.ToInt32(d.Target.Port), d.TargetHealth.State))
			if d.TargetHealth.State == elbtypes.TargetHealthStateEnumHealthy {
				healthy++
			}
		}
		sort.Strings(states)
		if s := strings.Join(states, ", "); s != last {
			say("targets (host port, health): %s", s)
			last = s
		}
		if healthy == n && len(states) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target group %s: not %d healthy targets within 2 minutes (%s); see berth-lb's log", demoName, n, last)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitAnswers waits until url answers 200 (HAProxy sends traffic to a
// target once its health checks passed twice, 10 s at the least).
func waitAnswers(ctx context.Context, url string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	c := &http.Client{Timeout: 5 * time.Second}
	for {
		status, body, err := fetch(ctx, c, url)
		if err == nil && status == http.StatusOK {
			return body, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not answer 200 within 2 minutes (last: %d %v); see berth-lb's log", url, status, err)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return "", err
		}
	}
}

func fetch(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// replaceTasks starts a new deployment of the service (new tasks for the
// same task definition, as `aws ecs update-service --force-new-deployment`)
// and sends a request to url every 100 ms until it has completed, printing
// every second which containers answered how many. It returns the requests
// sent and how many failed.
func replaceTasks(ctx context.Context, client *ecs.Client, url string) (sent, failed int, err error) {
	say("replacing both tasks (a new deployment, as aws ecs update-service --force-new-deployment) while requesting %s every 100 ms", url)
	out, err := client.UpdateService(context.WithoutCancel(ctx), &ecs.UpdateServiceInput{Service: aws.String(demoName), ForceNewDeployment: true})
	if err != nil {
		return 0, 0, fmt.Errorf("update service: %w", err)
	}
	deployment := ""
	for _, d := range out.Service.Deployments {
		if aws.ToString(d.Status) == "PRIMARY" {
			deployment = aws.ToString(d.Id)
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	start, second := time.Now(), time.Now()
	answered := map[string]int{} // by container, this second
	for {
		status, body, ferr := fetch(ctx, c, url)
		if ctx.Err() != nil {
			return sent, failed, ctx.Err()
		}
		sent++
		if ferr != nil || status != http.StatusOK {
			failed++
			fmt.Printf("    request %d failed: %d %v\n", sent, status, ferr)
		} else {
			answered[container(body)]++
		}
		if time.Since(second) >= time.Second {
			fmt.Printf("    +%2.0fs answered by %s\n", time.Since(start).Seconds(), tally(answered))
			second, answered = time.Now(), map[string]int{}
			done, err := deployed(ctx, client, deployment)
			if err != nil {
				return sent, failed, err
			}
			if done {
				return sent, failed, nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return sent, failed, err
		}
	}
}

// container is the id the demo image's page names ("Hello from Berth
// (container 1a2b3c4d)"), or the page.
func container(page string) string {
	page = strings.TrimSpace(page)
	if _, id, ok := strings.Cut(page, "(container "); ok {
		return "container " + strings.TrimSuffix(id, ")")
	}
	return page
}

// tally is "container a ×5, container b ×4", sorted.
func tally(counts map[string]int) string {
	if len(counts) == 0 {
		return "nobody"
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// deployed says whether deployment is the service's only one and completed.
func deployed(ctx context.Context, client *ecs.Client, deployment string) (bool, error) {
	out, err := client.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{demoName}})
	if err != nil || len(out.Services) != 1 {
		return false, fmt.Errorf("describe service %s: %v", demoName, err)
	}
	ds := out.Services[0].Deployments
	return len(ds) == 1 && aws.ToString(ds[0].Id) == deployment && ds[0].RolloutState == types.DeploymentRolloutStateCompleted, nil
}

// deleteServices deletes every service of the cluster (force: their tasks
// drain from the load balancer, then stop).
func deleteServices(ctx context.Context, client *ecs.Client) error {
	pages := ecs.NewListServicesPaginator(client, &ecs.ListServicesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list services: %w", err)
		}
		for _, arn := range page.ServiceArns {
			say("deleting service %s", taskID(arn))
			if _, err := client.DeleteService(ctx, &ecs.DeleteServiceInput{Service: aws.String(arn), Force: aws.Bool(true)}); err != nil {
				return fmt.Errorf("delete service %s: %w", arn, err)
			}
		}
	}
	return nil
}
