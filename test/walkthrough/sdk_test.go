package walkthrough_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// TestSDKWalkThrough is the walk-through with aws-sdk-go-v2, configured
// from dev mode's env file as a program would be (shared credentials
// file, profile, region), its clients pointed at the recording proxy; the
// service is waited for with the SDK's ServicesStable and ServicesInactive
// waiters.
func TestSDKWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dev mode")
	}
	l := startDevLab(t)
	v := newSecretValues()
	ctx := t.Context()
	cfg := l.env.AWSConfig(t)
	ec := ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(l.proxyURL) })
	pc := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(l.proxyURL) })
	sc := sm.NewFromConfig(cfg, func(o *sm.Options) { o.BaseEndpoint = aws.String(l.proxyURL) })
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	_, err := ec.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("walk-sdk"),
		Settings: []ecstypes.ClusterSetting{{Name: ecstypes.ClusterSettingNameContainerInsights, Value: aws.String("enabled")}},
		Tags:     []ecstypes.Tag{{Key: aws.String("project"), Value: aws.String("walk")}}})
	must("CreateCluster", err)
	_, err = pc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/walk-sdk/db-password"),
		Type: ssmtypes.ParameterTypeSecureString, Value: aws.String(v.db)})
	must("PutParameter", err)
	sealed, err := pc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/walk-sdk/db-password")})
	must("GetParameter", err)
	if got := aws.ToString(sealed.Parameter.Value); got == v.db || got == "" {
		t.Errorf("GetParameter without WithDecryption answered %q, want the sealed value", got)
	}
	param, err := pc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/walk-sdk/db-password"), WithDecryption: aws.Bool(true)})
	must("GetParameter WithDecryption", err)
	if aws.ToString(param.Parameter.Value) != v.db {
		t.Errorf("GetParameter WithDecryption answered %q, want the value", aws.ToString(param.Parameter.Value))
	}
	secretString := fmt.Sprintf(`{"token":%q}`, v.token)
	secret, err := sc.CreateSecret(ctx, &sm.CreateSecretInput{Name: aws.String("walk-sdk-api"), SecretString: aws.String(secretString)})
	must("CreateSecret", err)
	sv, err := sc.GetSecretValue(ctx, &sm.GetSecretValueInput{SecretId: aws.String("walk-sdk-api")})
	must("GetSecretValue", err)
	if aws.ToString(sv.SecretString) != secretString {
		t.Errorf("GetSecretValue answered %q", aws.ToString(sv.SecretString))
	}

	register := func(revision string) string {
		t.Helper()
		td, err := ec.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
			Family: aws.String("walk-sdk-app"), NetworkMode: ecstypes.NetworkModeBridge, ExecutionRoleArn: aws.String(execRoleArn),
			ContainerDefinitions: []ecstypes.ContainerDefinition{{
				Name: aws.String("app"), Image: aws.String(l.image), Memory: aws.Int32(32), Essential: aws.Bool(true),
				Environment: []ecstypes.KeyValuePair{{Name: aws.String("REVISION"), Value: aws.String(revision)}},
				Secrets: []ecstypes.Secret{
					{Name: aws.String("DB_PASSWORD"), ValueFrom: param.Parameter.ARN},
					{Name: aws.String("API_TOKEN"), ValueFrom: aws.String(aws.ToString(secret.ARN) + ":token::")},
				},
			}},
		})
		must("RegisterTaskDefinition", err)
		return aws.ToString(td.TaskDefinition.TaskDefinitionArn)
	}
	stable := ecs.NewServicesStableWaiter(ec, func(o *ecs.ServicesStableWaiterOptions) { o.MinDelay, o.MaxDelay = time.Second, 2*time.Second })
	waitStable := func() {
		t.Helper()
		must("wait for ServicesStable", stable.Wait(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{"walk-sdk-app"}}, 2*time.Minute))
	}

	rev1 := register("1")
	_, err = ec.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("default"), ServiceName: aws.String("walk-sdk-app"),
		TaskDefinition: aws.String(rev1), DesiredCount: aws.Int32(2),
		DeploymentConfiguration: &ecstypes.DeploymentConfiguration{MinimumHealthyPercent: aws.Int32(50), MaximumPercent: aws.Int32(200)},
		PlacementStrategy: []ecstypes.PlacementStrategy{{Type: ecstypes.PlacementStrategyTypeSpread, Field: aws.String("instanceId")},
			{Type: ecstypes.PlacementStrategyTypeBinpack, Field: aws.String("memory")}},
		PlacementConstraints: []ecstypes.PlacementConstraint{{Type: ecstypes.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.os-type == linux")}},
		PropagateTags:        ecstypes.PropagateTagsService, EnableECSManagedTags: true})
	must("CreateService", err)
	waitStable()
	l.checkSecretsArrived(t, l.waitService(t, "walk-sdk-app", rev1, 2), v, "1")

	rev2 := register("2")
	_, err = ec.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("default"), Service: aws.String("walk-sdk-app"), TaskDefinition: aws.String(rev2)})
	must("UpdateService", err)
	waitStable()
	l.checkSecretsArrived(t, l.waitService(t, "walk-sdk-app", rev2, 2), v, "2")

	_, err = ec.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: aws.String("default"), Service: aws.String("walk-sdk-app"), Force: aws.Bool(true)})
	must("DeleteService", err)
	inactive := ecs.NewServicesInactiveWaiter(ec, func(o *ecs.ServicesInactiveWaiterOptions) { o.MinDelay, o.MaxDelay = time.Second, 2*time.Second })
	must("wait for ServicesInactive", inactive.Wait(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("default"), Services: []string{"walk-sdk-app"}}, 2*time.Minute))
	for _, rev := range []string{rev1, rev2} {
		_, err = ec.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String(rev)})
		must("DeregisterTaskDefinition", err)
	}
	_, err = ec.DeleteCluster(ctx, &ecs.DeleteClusterInput{Cluster: aws.String("walk-sdk")})
	must("DeleteCluster", err)
	_, err = pc.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/walk-sdk/db-password")})
	must("DeleteParameter", err)
	_, err = sc.DeleteSecret(ctx, &sm.DeleteSecretInput{SecretId: aws.String("walk-sdk-api"), ForceDeleteWithoutRecovery: aws.Bool(true)})
	must("DeleteSecret", err)

	l.checkNothingLeft(t, "walk-sdk-app", "walk-sdk-app", "walk-sdk", "/walk-sdk", "walk-sdk-api")
	l.checkAnswers(t, v)
	l.stop(t)
	l.checkLogs(t, v)
}
