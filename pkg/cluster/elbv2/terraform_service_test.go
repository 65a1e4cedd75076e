package elbv2_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// tfServiceConfig is a service behind a load balancer as an operator
// writes it: a cluster, a task definition publishing port 80 on a dynamic
// host port, an Application Load Balancer, an instance target group, an
// HTTP listener and an aws_ecs_service with a load_balancer block.
const tfServiceConfig = tfProvider + `
resource "aws_ecs_cluster" "lab" {
  name = "lab"
}

resource "aws_ecs_task_definition" "web" {
  family       = "web"
  network_mode = "bridge"
  container_definitions = jsonencode([{
    name         = "web"
    image        = "busybox"
    memory       = 32
    essential    = true
    command      = ["httpd", "-f", "-p", "80"]
    portMappings = [{ containerPort = 80, hostPort = 0, protocol = "tcp" }]
  }])
}

resource "aws_lb" "web" {
  name    = "web"
  subnets = ["subnet-berth"]
}

resource "aws_lb_target_group" "web" {
  name                 = "web"
  port                 = 80
  protocol             = "HTTP"
  vpc_id               = "vpc-berth"
  target_type          = "instance"
  deregistration_delay = 5
  health_check {
    path     = "/"
    interval = 5
    timeout  = 2
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.web.arn
  port              = 8080
  protocol          = "HTTP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.web.arn
  }
}

resource "aws_ecs_service" "web" {
  name                              = "web"
  cluster                           = aws_ecs_cluster.lab.id
  task_definition                   = aws_ecs_task_definition.web.arn
  desired_count                     = 2
  health_check_grace_period_seconds = 30
  load_balancer {
    target_group_arn = aws_lb_target_group.web.arn
    container_name   = "web"
    container_port   = 80
  }
  # No ordered_placement_strategy: the service stores none and answers
  # none (ECS's default applies when tasks are placed), so the second plan
  # must show no changes.

  # ECS refuses a target group no load balancer uses.
  depends_on = [aws_lb_listener.http]
}
`

// TestTerraformService applies a service behind a load balancer with
// Terraform, checks the service's loadBalancers through the SDK, plans
// again expecting no changes and destroys, expecting no load-balancing
// record left and the service gone.
func TestTerraformService(t *testing.T) {
	if testing.Short() {
		t.Skip("runs terraform")
	}
	l := startLab(t)
	// The service controller makes a deleted service INACTIVE, which
	// Terraform's destroy waits for: run the endpoint's background work.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.ep.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("endpoint: %v", err)
		}
	})
	run := testenv.Terraform(t, fmt.Sprintf(tfServiceConfig, region, l.id, l.secret, l.url))
	run(0, "init", "-input=false", "-no-color")
	run(0, "apply", "-auto-approve", "-input=false", "-no-color")

	out, err := l.ecs().DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("lab"), Services: []string{"web"}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("describe the applied service: %v %+v", err, out)
	}
	svc := out.Services[0]
	if len(svc.LoadBalancers) != 1 || aws.ToString(svc.LoadBalancers[0].ContainerName) != "web" || aws.ToInt32(svc.LoadBalancers[0].ContainerPort) != 80 ||
		aws.ToInt32(svc.HealthCheckGracePeriodSeconds) != 30 {
		t.Errorf("the applied service: loadBalancers %+v, grace %v", svc.LoadBalancers, svc.HealthCheckGracePeriodSeconds)
	}
	if len(svc.PlacementStrategy) != 0 {
		t.Errorf("the applied service answers placementStrategy %+v; none was given", svc.PlacementStrategy)
	}

	// A second plan shows no changes (exit code 0 with -detailed-exitcode).
	run(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")

	run(0, "destroy", "-auto-approve", "-input=false", "-no-color")
	snap := l.snapshot(t)
	for _, b := range records.LBBuckets() {
		if len(snap[b]) != 0 {
			t.Errorf("after destroy, %s still holds %v", b, snap[b])
		}
	}
	out, err = l.ecs().DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("lab"), Services: []string{"web"}})
	if err == nil && len(out.Services) == 1 && aws.ToString(out.Services[0].Status) == "ACTIVE" {
		t.Errorf("after destroy the service is still ACTIVE")
	}
}
