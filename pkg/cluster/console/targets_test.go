package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// TestServiceTargets: a service behind a target group shows its tasks'
// targets (instance and dynamic host port) with their health, as
// DescribeTargetHealth reports it (initial: no data plane reported yet).
func TestServiceTargets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	lbc := elb.New(elb.Options{Region: testRegion, BaseEndpoint: aws.String(f.url), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(f.adminID, f.adminKey, "")})
	tg, err := lbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("web-tg"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-berth"), TargetType: elbtypes.TargetTypeEnumInstance})
	if err != nil {
		t.Fatalf("CreateTargetGroup: %v", err)
	}
	tgArn := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	lb, err := lbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-berth"}})
	if err != nil {
		t.Fatalf("CreateLoadBalancer: %v", err)
	}
	if _, err := lbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgArn)}}}); err != nil {
		t.Fatalf("CreateListener: %v", err)
	}
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("busybox"), Memory: aws.Int32(32),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0)}}}}}); err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	if _, err := f.admin.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("web"), ServiceName: aws.String("site"),
		TaskDefinition: aws.String("web"), DesiredCount: aws.Int32(1),
		LoadBalancers: []ecstypes.LoadBalancer{{TargetGroupArn: aws.String(tgArn), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}}}); err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	// The agent reports the task RUNNING with the container's dynamic host
	// port, which the service controller registers as the target.
	var taskArn string
	for deadline := time.Now().Add(30 * time.Second); taskArn == ""; time.Sleep(100 * time.Millisecond) {
		list, err := f.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("web"), ServiceName: aws.String("site")})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.TaskArns) > 0 {
			taskArn = list.TaskArns[0]
		} else if time.Now().After(deadline) {
			t.Fatal("no task of site placed after 30s")
		}
	}
	if _, err := f.agent.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("web"), Task: aws.String(taskArn),
		Status: aws.String("RUNNING"), Containers: []ecstypes.ContainerStateChange{{ContainerName: aws.String("web"), Status: aws.String("RUNNING"),
			NetworkBindings: []ecstypes.NetworkBinding{{BindIP: aws.String("0.0.0.0"), ContainerPort: aws.Int32(8080), HostPort: aws.Int32(32770),
				Protocol: ecstypes.TransportProtocolTcp}}}}}); err != nil {
		t.Fatalf("SubmitTaskStateChange: %v", err)
	}
	c, _, _ := f.signInHTTP(t, f.adminID, f.adminKey)
	deadline := time.Now().Add(30 * time.Second)
	for {
		page := get(t, c, f.url+"/console/clusters/web/services/site?part=live")
		// No data plane has reported yet: the target is initial.
		if strings.Contains(page, `id="targets"`) && strings.Contains(page, "web-tg") && strings.Contains(page, ">initial<") && strings.Contains(page, ":32770<") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service page shows no target of web-tg after 30s:\n%s", page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
