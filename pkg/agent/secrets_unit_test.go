package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
)

// TestSecretReferences: how a valueFrom names an SSM parameter, a region
// and the service; where secrets are fetched from.
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
	s := &secretSource{region: "us-east-1"}
	for _, tc := range []struct {
		ref  engine.SecretRef
		want string
	}{
		{engine.SecretRef{ValueFrom: "/app/db"}, "us-east-1"},
		{engine.SecretRef{ValueFrom: "arn:aws:ssm:eu-west-3:000000000000:parameter/db"}, "eu-west-3"},
		{engine.SecretRef{ValueFrom: "arn:aws:ssm:eu-west-3:000000000000:parameter/db", Region: "ap-south-1"}, "ap-south-1"},
	} {
		if got := s.refRegion(tc.ref); got != tc.want {
			t.Errorf("refRegion(%+v) = %q, want %q", tc.ref, got, tc.want)
		}
	}
	if !isSecretsManager("arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf") || isSecretsManager("/secretsmanager/x") {
		t.Error("isSecretsManager tells the services apart wrongly")
	}
	for in, want := range map[string]string{
		"":                                    "",
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080",
		"https://a:1,https://b:1":             "https://a:1",
		"https://ecs.us-east-1.amazonaws.com": "",
	} {
		if got := secretsEndpoint(in); got != want {
			t.Errorf("secretsEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSecretFetchRefusals: without task roles, without the task's
// execution role, and with a malformed Secrets Manager valueFrom, Fetch
// fails naming the secret before any call.
func TestSecretFetchRefusals(t *testing.T) {
	ctx := context.Background()
	ref := []engine.SecretRef{{Name: "DB", ValueFrom: "/app/db"}}
	if _, err := (&secretSource{}).Fetch(ctx, "task", ref); err == nil || !strings.Contains(err.Error(), "secret DB") || !strings.Contains(err.Error(), "ECS_ENABLE_TASK_IAM_ROLE") {
		t.Errorf("without task roles: %v", err)
	}
	s := &secretSource{store: iam.NewStore(), region: "us-east-1"}
	if _, err := s.Fetch(ctx, "task", ref); err == nil || !strings.Contains(err.Error(), "secret DB") || !strings.Contains(err.Error(), "execution role") {
		t.Errorf("without an execution role: %v", err)
	}
	bad := engine.SecretRef{Name: "API", ValueFrom: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf:user"}
	if _, err := s.secretValue(ctx, nil, "us-east-1", bad); err == nil || !strings.Contains(err.Error(), "secret API") || !strings.Contains(err.Error(), ":json-key:version-stage:version-id") {
		t.Errorf("a valueFrom with one suffix: %v", err)
	}
}
