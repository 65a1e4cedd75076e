package ecsapi

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func TestDeploymentConfigDefaultsAndLimits(t *testing.T) {
	dc, err := deploymentConfig(types.SchedulingStrategyReplica, nil, nil)
	if err != nil || aws.ToInt32(dc.MinimumHealthyPercent) != 100 || aws.ToInt32(dc.MaximumPercent) != 200 {
		t.Fatalf("REPLICA defaults %+v %v, want 100/200", dc, err)
	}
	dc, err = deploymentConfig(types.SchedulingStrategyDaemon, nil, nil)
	if err != nil || aws.ToInt32(dc.MinimumHealthyPercent) != 0 || aws.ToInt32(dc.MaximumPercent) != 100 {
		t.Fatalf("DAEMON defaults %+v %v, want 0/100", dc, err)
	}
	for _, bad := range []types.DeploymentConfiguration{
		{MinimumHealthyPercent: aws.Int32(-1)},
		{MinimumHealthyPercent: aws.Int32(101)},
		{MaximumPercent: aws.Int32(99)},
		{MaximumPercent: aws.Int32(201)},
	} {
		if _, err := deploymentConfig(types.SchedulingStrategyReplica, &bad, nil); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestDescribeServicesDefaults pins the members DescribeServices returns
// for a service created with only the required members, with ECS's
// defaults: a client that reads back what it wrote (Terraform's
// aws_ecs_service) must see them, false and 0 included.
func TestDescribeServicesDefaults(t *testing.T) {
	h := newAPIHarness(t)
	h.must("CreateCluster", `{"clusterName":"c"}`)
	h.must("RegisterTaskDefinition", `{"family":"web","containerDefinitions":[{"name":"app","image":"busybox","memory":64}]}`)
	h.must("CreateService", `{"cluster":"c","serviceName":"svc","taskDefinition":"web","desiredCount":0}`)
	m := h.must("DescribeServices", `{"cluster":"c","services":["svc"]}`)
	svc := m["services"].([]any)[0].(map[string]any)
	want := map[string]string{
		"launchType": `"EC2"`, "schedulingStrategy": `"REPLICA"`, "propagateTags": `"NONE"`,
		"enableECSManagedTags": `false`, "enableExecuteCommand": `false`, "availabilityZoneRebalancing": `"ENABLED"`,
		"desiredCount": `0`, "runningCount": `0`, "pendingCount": `0`, "status": `"ACTIVE"`,
		"deploymentConfiguration": `{"deploymentCircuitBreaker":{"enable":false,"rollback":false},"maximumPercent":200,"minimumHealthyPercent":100,"strategy":"ROLLING"}`,
		"deploymentController":    `{"type":"ECS"}`,
		"loadBalancers":           `[]`, "serviceRegistries": `[]`, "placementConstraints": `[]`,
		// None given, none answered (ECS applies its default when it places;
		// answering it made Terraform plan to remove it on every run).
		"placementStrategy": `[]`,
	}
	for k, w := range want {
		got, err := json.Marshal(svc[k])
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != w {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	for _, k := range []string{"serviceArn", "clusterArn", "taskDefinition", "createdAt", "createdBy", "deployments", "events"} {
		if _, ok := svc[k]; !ok {
			t.Errorf("%s missing from %v", k, svc)
		}
	}
	dep := svc["deployments"].([]any)[0].(map[string]any)
	for _, k := range []string{"runningCount", "pendingCount", "failedTasks", "desiredCount", "rolloutState", "launchType"} {
		if _, ok := dep[k]; !ok {
			t.Errorf("deployment lacks %s: %v", k, dep)
		}
	}
}
