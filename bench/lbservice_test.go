package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/internal/simfleet"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// BenchmarkLBRunningToTraffic measures the time from a service's task
// reaching RUNNING to the first answer from it through HAProxy, against
// its floor in the same run: HealthCheckIntervalSeconds x
// HealthyThresholdCount (the shortest the API allows, 5 s x 2) plus
// berth-lb's poll interval. The endpoint (with its service controller at
// its default timing) and berth-lb run in this process; the instance is
// a simulated agent over real ACS (internal/simfleet) that reports the
// task RUNNING with a dynamic host port, and a plain Go HTTP server
// started on that port as soon as the task is seen RUNNING stands in for
// the container. Each b.N iteration is one service of one task, behind
// its own target group and listener; run with -benchtime 3x.
func BenchmarkLBRunningToTraffic(b *testing.B) {
	testenv.RequireBinaries(b, "haproxy")
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		b.Fatal(err)
	}
	const (
		interval, healthy = 5, 2
		poll              = 500 * time.Millisecond
	)
	ctx := context.Background()
	env := simfleet.NewEnv(b, simfleet.EnvOptions{Fleet: simfleet.Options{StartDelay: 10 * time.Millisecond}})
	if _, err := env.Fleet.Add(ctx, 1, map[string]string{"berth.host-address": "127.0.0.1"}); err != nil {
		b.Fatal(err)
	}
	adminID, adminSecret, err := env.Endpoint.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	lbID, lbSecret, err := env.Endpoint.Keys().Create(auth.RoleLB, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	c := elb.New(elb.Options{Region: simfleet.Region, BaseEndpoint: aws.String(env.URL), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(adminID, adminSecret, ""), Retryer: aws.NopRetryer{}})
	lbOut, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("bench"), Subnets: []string{"subnet-berth"}})
	if err != nil {
		b.Fatal(err)
	}
	def, err := env.Admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64),
			Essential: aws.Bool(true), PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080)}}}}})
	if err != nil {
		b.Fatal(err)
	}
	startBerthLB(b, env.URL, simfleet.Region, lbID, lbSecret, haproxy, poll.String())
	client := &http.Client{Timeout: 2 * time.Second}

	floor := time.Duration(interval*healthy)*time.Second + poll
	var took []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("web%d", i)
		tg, err := c.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(name), Protocol: elbtypes.ProtocolEnumHttp,
			Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumInstance,
			HealthCheckIntervalSeconds: aws.Int32(interval), HealthCheckTimeoutSeconds: aws.Int32(2), HealthyThresholdCount: aws.Int32(healthy)})
		if err != nil {
			b.Fatal(err)
		}
		tgArn := tg.TargetGroups[0].TargetGroupArn
		port := freeLoopbackPort(b)
		if _, err := c.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lbOut.LoadBalancers[0].LoadBalancerArn,
			Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(int32(port)),
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgArn}}}); err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		// HAProxy's frontend is up (503: no server yet) before the task
		// exists, so the figure holds no listener set-up.
		pollUntil(b, "listener "+url, func() bool { code, _ := getBody(client, url); return code != 0 })
		if _, err := env.Admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String(env.Cluster), ServiceName: aws.String(name),
			TaskDefinition: def.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(1),
			LoadBalancers: []ecstypes.LoadBalancer{{TargetGroupArn: tgArn, ContainerName: aws.String("app"), ContainerPort: aws.Int32(8080)}}}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var running time.Time
		var hostPort int32
		pollUntil(b, name+" RUNNING", func() bool {
			list, err := env.Admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(env.Cluster), ServiceName: aws.String(name)})
			if err != nil || len(list.TaskArns) == 0 {
				return false
			}
			out, err := env.Admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(env.Cluster), Tasks: list.TaskArns})
			if err != nil || len(out.Tasks) == 0 || aws.ToString(out.Tasks[0].LastStatus) != "RUNNING" {
				return false
			}
			running = time.Now()
			if t := out.Tasks[0].StartedAt; t != nil && t.Before(running) {
				running = *t
			}
			hostPort = aws.ToInt32(out.Tasks[0].Containers[0].NetworkBindings[0].HostPort)
			return true
		})
		want := name + " answers"
		serveAt(b, "127.0.0.1:"+strconv.Itoa(int(hostPort)), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, want)
		}))
		pollUntil(b, name+" through HAProxy", func() bool { code, body := getBody(client, url); return code == 200 && body == want })
		took = append(took, time.Since(running).Seconds())
	}
	b.StopTimer()
	m := median(took)
	b.ReportMetric(m, "running-to-traffic-s")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(m/floor.Seconds(), "measured/floor")
	b.ReportMetric(0, "ns/op")
	b.Logf("rounds running-to-traffic s %v; floor %v", took, floor)
}

func freeLoopbackPort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pollUntil polls cond every 10 ms for up to 2 minutes.
func pollUntil(b *testing.B, what string, cond func() bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not after 2 minutes", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getBody is one GET's status and body; 0 when nothing answered.
func getBody(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
