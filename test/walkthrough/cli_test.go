package walkthrough_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

// taskDefJSON is the walk-throughs' task definition as an operator writes
// it for `aws ecs register-task-definition --cli-input-json`.
func taskDefJSON(t *testing.T, family, image, revision, paramArn, secretArn string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"family":           family,
		"networkMode":      "bridge",
		"executionRoleArn": execRoleArn,
		"containerDefinitions": []map[string]any{{
			"name": "app", "image": image, "memory": 32, "essential": true,
			"environment": []map[string]string{{"name": "REVISION", "value": revision}},
			"secrets": []map[string]string{
				{"name": "DB_PASSWORD", "valueFrom": paramArn},
				{"name": "API_TOKEN", "valueFrom": secretArn + ":token::"},
			},
		}},
		"tags": []map[string]string{{"key": "project", "value": "walk"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCLIWalkThrough is the Terraform walk-through as a plain `aws` CLI
// script (the AWS CLI as installed, through the recording proxy): the
// cluster with container insights, a SecureString and a secret, a task
// definition reading both, a service with placement strategies and a
// constraint, waited for with `aws ecs wait services-stable`, revision 2
// rolled out the same way, then everything deleted again.
func TestCLIWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the AWS CLI and dev mode")
	}
	l := startDevLab(t)
	v := newSecretValues()
	aws := testenv.AWSCLI(t, l.proxyURL, region, l.adminID, l.adminSecret)
	str := func(m map[string]any, path ...string) string {
		var cur any = m
		for _, p := range path {
			cur = cur.(map[string]any)[p]
		}
		s, _ := cur.(string)
		return s
	}

	aws(t, true, "ecs", "create-cluster", "--cluster-name", "walk-cli",
		"--settings", "name=containerInsights,value=enabled", "--tags", "key=project,value=walk")
	aws(t, true, "ssm", "put-parameter", "--name", "/walk-cli/db-password", "--type", "SecureString", "--value", v.db)
	param := aws(t, true, "ssm", "get-parameter", "--name", "/walk-cli/db-password")
	if got := str(param, "Parameter", "Value"); got == v.db || got == "" {
		t.Errorf("get-parameter without --with-decryption answered %q, want the sealed value", got)
	}
	param = aws(t, true, "ssm", "get-parameter", "--name", "/walk-cli/db-password", "--with-decryption")
	if got := str(param, "Parameter", "Value"); got != v.db {
		t.Errorf("get-parameter --with-decryption answered %q, want the value", got)
	}
	paramArn := str(param, "Parameter", "ARN")
	secret := aws(t, true, "secretsmanager", "create-secret", "--name", "walk-cli-api",
		"--secret-string", fmt.Sprintf(`{"token":%q}`, v.token))
	secretArn := str(secret, "ARN")
	got := aws(t, true, "secretsmanager", "get-secret-value", "--secret-id", "walk-cli-api")
	if str(got, "SecretString") != fmt.Sprintf(`{"token":%q}`, v.token) {
		t.Errorf("get-secret-value answered %v", got)
	}

	td := aws(t, true, "ecs", "register-task-definition", "--cli-input-json", taskDefJSON(t, "walk-cli-app", l.image, "1", paramArn, secretArn))
	rev1 := str(td, "taskDefinition", "taskDefinitionArn")
	aws(t, true, "ecs", "create-service", "--cluster", "default", "--service-name", "walk-cli-app",
		"--task-definition", "walk-cli-app:1", "--desired-count", "2",
		"--deployment-configuration", "minimumHealthyPercent=50,maximumPercent=200",
		"--placement-strategy", "type=spread,field=instanceId", "type=binpack,field=memory",
		"--placement-constraints", "type=memberOf,expression=attribute:ecs.os-type == linux",
		"--propagate-tags", "SERVICE", "--enable-ecs-managed-tags")
	aws(t, true, "ecs", "wait", "services-stable", "--cluster", "default", "--services", "walk-cli-app")
	l.checkSecretsArrived(t, l.waitService(t, "walk-cli-app", rev1, 2), v, "1")

	td = aws(t, true, "ecs", "register-task-definition", "--cli-input-json", taskDefJSON(t, "walk-cli-app", l.image, "2", paramArn, secretArn))
	rev2 := str(td, "taskDefinition", "taskDefinitionArn")
	aws(t, true, "ecs", "update-service", "--cluster", "default", "--service", "walk-cli-app", "--task-definition", rev2)
	aws(t, true, "ecs", "wait", "services-stable", "--cluster", "default", "--services", "walk-cli-app")
	l.checkSecretsArrived(t, l.waitService(t, "walk-cli-app", rev2, 2), v, "2")

	aws(t, true, "ecs", "delete-service", "--cluster", "default", "--service", "walk-cli-app", "--force")
	aws(t, true, "ecs", "wait", "services-inactive", "--cluster", "default", "--services", "walk-cli-app")
	aws(t, true, "ecs", "deregister-task-definition", "--task-definition", rev1)
	aws(t, true, "ecs", "deregister-task-definition", "--task-definition", rev2)
	aws(t, true, "ecs", "delete-cluster", "--cluster", "walk-cli")
	aws(t, true, "ssm", "delete-parameter", "--name", "/walk-cli/db-password")
	aws(t, true, "secretsmanager", "delete-secret", "--secret-id", "walk-cli-api", "--force-delete-without-recovery")

	l.checkNothingLeft(t, "walk-cli-app", "walk-cli-app", "walk-cli", "/walk-cli", "walk-cli-api")
	l.checkAnswers(t, v)
	l.stop(t)
	l.checkLogs(t, v)
}
