package secrets_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
)

// TestEndpointCLIWalkThrough runs the whole endpoint as berth-cluster
// builds it (cluster.Open with a role declared in its Options, as
// cluster.toml's [[roles]] gives them) and drives the secrets with the AWS
// CLI as an operator would: put a SecureString and a String, read them
// back, walk a path, create, update and read a secret, and read what the
// role's grant allows with the role's keys while the rest is refused.
// The endpoint's whole log, at debug level, holds no value.
func TestEndpointCLIWalkThrough(t *testing.T) {
	dir := t.TempDir()
	logBuf := &syncBuffer{}
	ep, err := cluster.Open(context.Background(), cluster.Options{Region: region, AccountID: account, DataDir: filepath.Join(dir, "data"),
		NoAgentSessions: true, Roles: labRoles(), Logger: slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	t.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	id, secret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{url: srv.URL, id: id, secret: secret, log: logBuf, db: ep.Store()}
	t.Cleanup(func() { l.checkLog(t) })
	dbPass := l.secretValue("cli-db-password-7f3a")
	apiKey := l.secretValue("cli-api-key-91bc")

	// The SDK through the assembled endpoint: the wiring (buckets, the
	// verifier's services, role keys) before the CLI.
	_, err = l.ssm(nil).PutParameter(context.Background(), &ssm.PutParameterInput{Name: aws.String("/app/sdk"), Type: ssmtypes.ParameterTypeString, Value: aws.String("v")})
	ok(t, "PutParameter through cluster.Open", err)
	if _, err := l.ssm(l.creds("AKIAAPPEXEC000000001", "app-exec-secret", "")).GetParameter(context.Background(),
		&ssm.GetParameterInput{Name: aws.String("/app/sdk")}); err != nil {
		t.Errorf("role credentials through cluster.Open: %v", err)
	}

	adminCLI := testenv.AWSCLI(t, l.url, region, l.id, l.secret)
	roleCLI := testenv.AWSCLI(t, l.url, region, "AKIAAPPEXEC000000001", "app-exec-secret")
	admin := func(wantOK bool, args ...string) map[string]any {
		t.Helper()
		return adminCLI(t, wantOK, args...)
	}
	role := func(wantOK bool, args ...string) map[string]any {
		t.Helper()
		return roleCLI(t, wantOK, args...)
	}
	field := func(m map[string]any, path ...string) any {
		var v any = m
		for _, p := range path {
			mm, _ := v.(map[string]any)
			v = mm[p]
		}
		return v
	}

	put := admin(true, "ssm", "put-parameter", "--name", "/app/db/password", "--type", "SecureString", "--value", dbPass, "--description", "db")
	if field(put, "Version") != float64(1) {
		t.Errorf("put-parameter: %v", put)
	}
	admin(true, "ssm", "put-parameter", "--name", "/app/db/host", "--type", "String", "--value", "db.lab")
	if out := admin(false, "ssm", "put-parameter", "--name", "/app/db/host", "--type", "String", "--value", "again"); !strings.Contains(out["error"].(string), "ParameterAlreadyExists") {
		t.Errorf("put-parameter over an existing one: %s", out["error"])
	}
	hidden := admin(true, "ssm", "get-parameter", "--name", "/app/db/password")
	if v, _ := field(hidden, "Parameter", "Value").(string); v == dbPass || v == "" {
		t.Errorf("get-parameter without --with-decryption shows %q", v)
	}
	got := admin(true, "ssm", "get-parameter", "--name", "/app/db/password", "--with-decryption")
	if field(got, "Parameter", "Value") != dbPass {
		t.Errorf("get-parameter --with-decryption: %v", field(got, "Parameter", "Value"))
	}
	byPath := admin(true, "ssm", "get-parameters-by-path", "--path", "/app", "--recursive")
	if ps, _ := byPath["Parameters"].([]any); len(ps) != 3 {
		t.Errorf("get-parameters-by-path /app --recursive: %v", byPath)
	}
	desc := admin(true, "ssm", "describe-parameters", "--parameter-filters", "Key=Type,Values=SecureString")
	if ps, _ := desc["Parameters"].([]any); len(ps) != 1 {
		t.Errorf("describe-parameters Type=SecureString: %v", desc)
	}

	created := admin(true, "secretsmanager", "create-secret", "--name", "db-api", "--secret-string", apiKey, "--description", "api key")
	arn, _ := created["ARN"].(string)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-test-1:123456789012:secret:db-api-") || len(arn) != len("arn:aws:secretsmanager:us-test-1:123456789012:secret:db-api-")+6 {
		t.Errorf("create-secret ARN %q", arn)
	}
	admin(true, "secretsmanager", "put-secret-value", "--secret-id", arn, "--secret-string", apiKey+"-v2")
	l.secretValue(apiKey + "-v2")
	prev := admin(true, "secretsmanager", "get-secret-value", "--secret-id", "db-api", "--version-stage", "AWSPREVIOUS")
	if prev["SecretString"] != apiKey {
		t.Errorf("get-secret-value AWSPREVIOUS: %v", prev["SecretString"])
	}
	list := admin(true, "secretsmanager", "list-secrets", "--filters", "Key=name,Values=db-")
	if sl, _ := list["SecretList"].([]any); len(sl) != 1 {
		t.Errorf("list-secrets name=db-: %v", list)
	}

	// The role reads what its grant names, and nothing else.
	if v := field(role(true, "ssm", "get-parameter", "--name", "/app/db/password", "--with-decryption"), "Parameter", "Value"); v != dbPass {
		t.Errorf("role get-parameter: %v", v)
	}
	if v := role(true, "secretsmanager", "get-secret-value", "--secret-id", arn)["SecretString"]; v != apiKey+"-v2" {
		t.Errorf("role get-secret-value: %v", v)
	}
	admin(true, "ssm", "put-parameter", "--name", "/ops/token", "--type", "SecureString", "--value", l.secretValue("ops-token-cli"))
	if out := role(false, "ssm", "get-parameter", "--name", "/ops/token"); !strings.Contains(out["error"].(string), "AccessDeniedException") ||
		!strings.Contains(out["error"].(string), "parameter/ops/token") {
		t.Errorf("role get-parameter outside its grant: %s", out["error"])
	}
	if out := role(false, "ecs", "list-clusters"); !strings.Contains(out["error"].(string), "AccessDenied") {
		t.Errorf("role keys on the ECS API: %s", out["error"])
	}

	del := admin(true, "secretsmanager", "delete-secret", "--secret-id", "db-api", "--recovery-window-in-days", "7")
	if del["DeletionDate"] == nil {
		t.Errorf("delete-secret: %v", del)
	}
	if out := admin(false, "secretsmanager", "get-secret-value", "--secret-id", "db-api"); !strings.Contains(out["error"].(string), "InvalidRequestException") {
		t.Errorf("get-secret-value of a deleted secret: %s", out["error"])
	}
	admin(true, "secretsmanager", "restore-secret", "--secret-id", "db-api")
	admin(true, "secretsmanager", "delete-secret", "--secret-id", "db-api", "--force-delete-without-recovery")
	admin(true, "ssm", "delete-parameters", "--names", "/app/db/password", "/app/db/host")
}
