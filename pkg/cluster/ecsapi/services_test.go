package ecsapi

import (
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
