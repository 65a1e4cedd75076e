package elbv2_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster/records"
)

// tfProvider is the AWS provider pointed at the endpoint: format it with
// the region, key id, secret and endpoint URL.
const tfProvider = `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}

provider "aws" {
  region                      = "%[1]s"
  access_key                  = "%[2]s"
  secret_key                  = "%[3]s"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    elbv2 = "%[4]s"
    ecs   = "%[4]s"
    # Destroying an aws_lb asks EC2 for the load balancer's network
    # interfaces; Berth serves no EC2 API, so the question stays on
    # loopback and is answered with an error, which the provider logs
    # and passes over.
    ec2   = "%[4]s"
  }
}
`

// tfConfig is the operator's configuration: an Application Load Balancer
// with an HTTP listener forwarding to a target group, a path rule
// forwarding with weights to two groups, and an ip target.
const tfConfig = tfProvider + `
resource "aws_lb" "web" {
  name               = "web"
  load_balancer_type = "application"
  internal           = false
  idle_timeout       = 120
  subnets            = ["subnet-berth"]
  tags               = { env = "lab" }
}

resource "aws_lb_target_group" "blue" {
  name                 = "blue"
  port                 = 8080
  protocol             = "HTTP"
  vpc_id               = "vpc-berth"
  target_type          = "ip"
  deregistration_delay = 30
  slow_start           = 60
  health_check {
    path                = "/healthz"
    interval            = 10
    timeout             = 3
    healthy_threshold   = 2
    unhealthy_threshold = 3
    matcher             = "200-299"
  }
  stickiness {
    type    = "lb_cookie"
    enabled = false
  }
}

resource "aws_lb_target_group" "green" {
  name        = "green"
  port        = 8080
  protocol    = "HTTP"
  vpc_id      = "vpc-berth"
  target_type = "ip"
}

resource "aws_lb_target_group_attachment" "blue1" {
  target_group_arn = aws_lb_target_group.blue.arn
  target_id        = "127.0.0.1"
  port             = 18080
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.web.arn
  port              = 8080
  protocol          = "HTTP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.blue.arn
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.web.arn
  port              = 8443
  protocol          = "HTTPS"
  certificate_arn   = "%[5]s"
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "nothing here"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "api" {
  listener_arn = aws_lb_listener.http.arn
  priority     = 10
  action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.blue.arn
        weight = 80
      }
      target_group {
        arn    = aws_lb_target_group.green.arn
        weight = 20
      }
    }
  }
  condition {
    path_pattern {
      values = ["/api/*"]
    }
  }
  condition {
    host_header {
      values = ["web.lab.localhost"]
    }
  }
}
`

// TestTerraform applies the configuration with Terraform and its AWS
// provider, checks the result through the SDK, plans again expecting no
// changes, and destroys, expecting nothing left.
func TestTerraform(t *testing.T) {
	if testing.Short() {
		t.Skip("runs terraform")
	}
	l := startLab(t)
	run := testenv.Terraform(t, fmt.Sprintf(tfConfig, region, l.id, l.secret, l.url, certArn))
	run(0, "init", "-input=false", "-no-color")
	run(0, "apply", "-auto-approve", "-input=false", "-no-color")

	ctx := context.Background()
	c := l.elb(l.id, l.secret)
	lbs, err := c.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"web"}})
	if err != nil || len(lbs.LoadBalancers) != 1 {
		t.Fatalf("describe the applied load balancer: %v", err)
	}
	attrs, err := c.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	if err != nil || attrValue(attrs.Attributes, "idle_timeout.timeout_seconds") != "120" {
		t.Errorf("idle timeout: %v %v", err, attrs)
	}
	ls, err := c.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	if err != nil || len(ls.Listeners) != 2 {
		t.Fatalf("listeners: %v %+v", err, ls)
	}
	rules, err := c.DescribeRules(ctx, &elb.DescribeRulesInput{ListenerArn: ls.Listeners[0].ListenerArn})
	if err != nil || len(rules.Rules) != 2 || aws.ToString(rules.Rules[0].Priority) != "10" {
		t.Fatalf("rules of the HTTP listener: %v %+v", err, rules)
	}
	weights := map[int32]bool{}
	for _, tg := range rules.Rules[0].Actions[0].ForwardConfig.TargetGroups {
		weights[aws.ToInt32(tg.Weight)] = true
	}
	if len(weights) != 2 || !weights[80] || !weights[20] {
		t.Errorf("the rule's weights are %v, want 80 and 20", weights)
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
}

func attrValue(attrs []elbtypes.LoadBalancerAttribute, key string) string {
	for _, a := range attrs {
		if aws.ToString(a.Key) == key {
			return aws.ToString(a.Value)
		}
	}
	return ""
}
