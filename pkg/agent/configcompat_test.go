package agent

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/logship"
)

// TestShippedLoggingDrivers keeps pkg/config's list of the drivers Berth
// runs (which ECS_AVAILABLE_LOGGING_DRIVERS is checked against) equal to
// what pkg/logship implements.
func TestShippedLoggingDrivers(t *testing.T) {
	got, want := config.ShippedLoggingDrivers(), logship.KnownDrivers()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("config.ShippedLoggingDrivers() = %q, logship.KnownDrivers() = %q", got, want)
	}
}

// TestAWSLogsExecutionRole: with ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE
// a task's awslogs shipper signs with its execution role credentials from
// the store; a task without them, or the setting off, keeps the agent's.
func TestAWSLogsExecutionRole(t *testing.T) {
	const taskARN = "arn:aws:ecs:us-east-1:000000000000:task/lab/0123456789abcdef"
	cfg, err := ConfigFromEnv([]string{"AWS_REGION=us-east-1", "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE=true", "ECS_ENABLE_TASK_IAM_ROLE=true"})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	roles := &taskRoles{store: iam.NewStore()}
	roles.store.SetTask(&api.Task{Arn: taskARN, ExecutionRoleCredentials: &api.IAMRoleCredentials{
		CredentialsID: "exec-1", RoleArn: "arn:aws:iam::000000000000:role/exec", AccessKeyID: "AKIAEXECUTION",
		SecretAccessKey: "secret", SessionToken: "token", Expiration: "2099-01-01T00:00:00Z"}})

	depsFor := a.awslogsExecutionRole(roles)
	if depsFor == nil {
		t.Fatal("no depsFor with the setting on")
	}
	deps := depsFor(taskARN)
	if deps == nil {
		t.Fatal("no Deps for a task with execution role credentials")
	}
	creds, err := deps.AWSCredentials.Retrieve(t.Context())
	if err != nil || creds.AccessKeyID != "AKIAEXECUTION" || creds.SessionToken != "token" || !creds.CanExpire {
		t.Errorf("credentials %+v (%v), want the execution role's, expiring", creds, err)
	}
	if deps.AWSRegion != "us-east-1" {
		t.Errorf("region %q, want the agent's", deps.AWSRegion)
	}
	if d := depsFor(taskARN + "-other"); d != nil {
		t.Errorf("a task without an execution role got %+v, want the agent's credentials (nil)", d)
	}

	cfg.Containers.AWSLogsExecutionRole = false
	if a.awslogsExecutionRole(roles) != nil {
		t.Error("setting off: depsFor is not nil")
	}
	cfg.Containers.AWSLogsExecutionRole = true
	if a.awslogsExecutionRole(nil) != nil {
		t.Error("task roles off (no store): depsFor is not nil")
	}
}
