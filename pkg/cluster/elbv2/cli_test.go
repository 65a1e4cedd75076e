package elbv2_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestCLIWalkThrough drives the API with the AWS CLI (`aws elbv2`) as an
// operator would: create a load balancer, a target group, a listener and
// a rule, register an ip target, read them back, and delete it all; and
// an error comes back with AWS's code.
func TestCLIWalkThrough(t *testing.T) {
	l := startLab(t)
	cli := testenv.AWSCLI(t, l.url, region, l.id, l.secret)
	run := func(wantOK bool, args ...string) map[string]any {
		t.Helper()
		return cli(t, wantOK, append([]string{"elbv2"}, args...)...)
	}
	str := func(m map[string]any, path ...any) string {
		t.Helper()
		var v any = m
		for _, p := range path {
			switch k := p.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		s, _ := v.(string)
		return s
	}

	lb := run(true, "create-load-balancer", "--name", "web", "--subnets", "subnet-berth", "--tags", "Key=env,Value=lab")
	lbArn := str(lb, "LoadBalancers", 0, "LoadBalancerArn")
	if !strings.Contains(lbArn, ":loadbalancer/app/web/") || str(lb, "LoadBalancers", 0, "State", "Code") != "active" {
		t.Fatalf("create-load-balancer: %v", lb)
	}
	tg := run(true, "create-target-group", "--name", "web", "--protocol", "HTTP", "--port", "8080", "--vpc-id", "vpc-berth",
		"--target-type", "ip", "--health-check-path", "/healthz", "--health-check-interval-seconds", "10")
	tgArn := str(tg, "TargetGroups", 0, "TargetGroupArn")
	run(true, "modify-target-group-attributes", "--target-group-arn", tgArn, "--attributes", "Key=deregistration_delay.timeout_seconds,Value=10")
	ln := run(true, "create-listener", "--load-balancer-arn", lbArn, "--protocol", "HTTP", "--port", "8080",
		"--default-actions", "Type=forward,TargetGroupArn="+tgArn)
	lnArn := str(ln, "Listeners", 0, "ListenerArn")
	rule := run(true, "create-rule", "--listener-arn", lnArn, "--priority", "5",
		"--conditions", "Field=path-pattern,Values=/api/*", "--actions", "Type=forward,TargetGroupArn="+tgArn)
	if str(rule, "Rules", 0, "Conditions", 0, "Values", 0) != "/api/*" {
		t.Errorf("create-rule: %v", rule)
	}
	run(true, "register-targets", "--target-group-arn", tgArn, "--targets", "Id=10.203.0.5,Port=32768")
	h := run(true, "describe-target-health", "--target-group-arn", tgArn)
	if str(h, "TargetHealthDescriptions", 0, "TargetHealth", "State") != "initial" ||
		str(h, "TargetHealthDescriptions", 0, "TargetHealth", "Reason") != "Elb.RegistrationInProgress" {
		t.Errorf("describe-target-health: %v", h)
	}
	attrs := run(true, "describe-target-group-attributes", "--target-group-arn", tgArn)
	if !strings.Contains(mustJSON(t, attrs), `"Key":"deregistration_delay.timeout_seconds","Value":"10"`) {
		t.Errorf("describe-target-group-attributes: %v", attrs)
	}
	tags := run(true, "describe-tags", "--resource-arns", lbArn)
	if str(tags, "TagDescriptions", 0, "Tags", 0, "Value") != "lab" {
		t.Errorf("describe-tags: %v", tags)
	}
	e := run(false, "create-load-balancer", "--name", "web")
	if !strings.Contains(e["error"].(string), "(DuplicateLoadBalancerName)") {
		t.Errorf("a taken name: %s", e["error"])
	}
	e = run(false, "describe-target-groups", "--names", "nope")
	if !strings.Contains(e["error"].(string), "(TargetGroupNotFound)") {
		t.Errorf("an unknown group: %s", e["error"])
	}
	run(true, "deregister-targets", "--target-group-arn", tgArn, "--targets", "Id=10.203.0.5,Port=32768")
	run(true, "delete-load-balancer", "--load-balancer-arn", lbArn)
	run(true, "delete-target-group", "--target-group-arn", tgArn)
	if d := run(true, "describe-load-balancers"); len(d["LoadBalancers"].([]any)) != 0 {
		t.Errorf("after the deletes: %v", d)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
