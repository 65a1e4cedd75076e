package execrole

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/iam"
)

// TestSecretReferences: how a valueFrom names an SSM parameter, a region
// and the service.
func TestSecretReferences(t *testing.T) {
	for in, want := range map[string]string{
		"/app/db": "/app/db",
		"db":      "db",
		"arn:aws:ssm:us-east-1:000000000000:parameter/app/db": "/app/db",
		"arn:aws:ssm:us-east-1:000000000000:parameter/db":     "/db",
		"arn:aws:ssm:us-east-1:000000000000:parameter/db:3":   "/db:3",
	} {
		if got := parameterName(in); got != want {
			t.Errorf("parameterName(%q) = %q, want %q", in, got, want)
		}
	}
	s := &Secrets{region: "us-east-1"}
	for _, tc := range []struct {
		ref  container.SecretRef
		want string
	}{
		{container.SecretRef{ValueFrom: "/app/db"}, "us-east-1"},
		{container.SecretRef{ValueFrom: "arn:aws:ssm:eu-west-3:000000000000:parameter/db"}, "eu-west-3"},
		{container.SecretRef{ValueFrom: "arn:aws:ssm:eu-west-3:000000000000:parameter/db", Region: "ap-south-1"}, "ap-south-1"},
	} {
		if got := s.refRegion(tc.ref); got != tc.want {
			t.Errorf("refRegion(%+v) = %q, want %q", tc.ref, got, tc.want)
		}
	}
	if !isSecretsManager("arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf") || isSecretsManager("/secretsmanager/x") {
		t.Error("isSecretsManager tells the services apart wrongly")
	}
}

// TestSecretFetchRefusals: without task roles, without the task's
// execution role, and with a malformed Secrets Manager valueFrom, Fetch
// fails naming the secret before any call.
func TestSecretFetchRefusals(t *testing.T) {
	ctx := context.Background()
	ref := []container.SecretRef{{Name: "DB", ValueFrom: "/app/db"}}
	if _, err := (&Secrets{}).Fetch(ctx, "task", ref); err == nil || !strings.Contains(err.Error(), "secret DB") || !strings.Contains(err.Error(), "ECS_ENABLE_TASK_IAM_ROLE") {
		t.Errorf("without task roles: %v", err)
	}
	s := &Secrets{store: iam.NewStore(), region: "us-east-1"}
	if _, err := s.Fetch(ctx, "task", ref); err == nil || !strings.Contains(err.Error(), "secret DB") || !strings.Contains(err.Error(), "execution role") {
		t.Errorf("without an execution role: %v", err)
	}
	bad := container.SecretRef{Name: "API", ValueFrom: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf:user"}
	if _, err := s.secretValue(ctx, nil, "us-east-1", bad); err == nil || !strings.Contains(err.Error(), "secret API") || !strings.Contains(err.Error(), ":json-key:version-stage:version-id") {
		t.Errorf("a valueFrom with one suffix: %v", err)
	}
}
