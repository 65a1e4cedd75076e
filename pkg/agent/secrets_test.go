package agent_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/engine"
)

// TestTaskSecretsFromEndpoint runs a real container whose task definition
// takes a SecureString from SSM Parameter Store and a JSON key of a
// Secrets Manager secret as environment variables: the agent fetches them
// from the cluster endpoint (cluster.Open with the execution role declared
// and granted /app/* and app-*) with the task's execution role
// credentials, and the container writes what it got to a host volume. No
// value is in the agent's data directory (its state file included) or in
// the agent's or the endpoint's log. A task whose secret the role may not
// read stops with ECS's reason naming the secret, its container never
// created.
func TestTaskSecretsFromEndpoint(t *testing.T) {
	const (
		account  = "000000000000"
		execRole = "arn:aws:iam::000000000000:role/app-exec"
		execKey  = "AKIAEXECSECRETS00001"
		execPass = "exec-role-secret-key"
		dbPass   = "db-pass-3f9a1c77e2"
		apiUser  = "svc-user-b81d44"
		apiPass  = "api-pass-0c5e93aa"
		opsToken = "ops-token-e1f2a3b4"
	)
	h := newHostEnv(t)
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "agent/secrets", testenv.ImageSpec{
		Cmd: []string{"/bin/sh", "-c", `printf '%s|%s' "$DB_PASSWORD" "$API_USER" > /out/env; exec sleep 600`}})

	var epLog, agentLog syncBuffer
	ctx := context.Background()
	ep, err := cluster.Open(ctx, cluster.Options{Region: lsRegion, AccountID: account, DataDir: filepath.Join(t.TempDir(), "endpoint"),
		NoAgentSessions: true, Logger: slog.New(slog.NewTextHandler(&epLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Roles: []roles.RoleConfig{{Arn: execRole, Source: roles.SourceStatic, AccessKeyID: execKey, SecretAccessKey: execPass,
			Secrets: []string{"arn:aws:ssm:us-east-1:000000000000:parameter/app/*", "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = ep.Close()
	})
	adminID, adminSecret, err := ep.Keys().Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	adminCreds := credentials.NewStaticCredentialsProvider(adminID, adminSecret, "")
	ssmc := ssm.New(ssm.Options{Region: lsRegion, Credentials: adminCreds, BaseEndpoint: aws.String(srv.URL), HTTPClient: awshttp.NewBuildableClient()})
	smc := secretsmanager.New(secretsmanager.Options{Region: lsRegion, Credentials: adminCreds, BaseEndpoint: aws.String(srv.URL), HTTPClient: awshttp.NewBuildableClient()})
	for name, v := range map[string]string{"/app/db/password": dbPass, "/ops/token": opsToken} {
		if _, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(v), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
			t.Fatal(err)
		}
	}
	sec, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app-api"),
		SecretString: aws.String(`{"user":"` + apiUser + `","pass":"` + apiPass + `"}`)})
	if err != nil {
		t.Fatal(err)
	}

	cfg := h.config(t)
	cfg.BackendHost = srv.URL
	withTaskRoles(t, cfg)
	a, _ := h.startAgent(t, cfg, agent.WithLogger(slog.New(slog.NewTextHandler(&agentLog, &slog.HandlerOptions{Level: slog.LevelDebug}))))

	exec := &api.IAMRoleCredentials{CredentialsID: "exec-" + randomHex(8), RoleArn: execRole, AccessKeyID: execKey, SecretAccessKey: execPass,
		Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	outDir := t.TempDir()
	task := func(arn, desired string, secrets ...api.Secret) *api.PayloadMessage {
		return &api.PayloadMessage{MessageID: randomHex(8), ClusterArn: "arn:aws:ecs:us-east-1:000000000000:cluster/lab",
			Tasks: []*api.Task{{Arn: arn, Family: "secrets", Version: "1", DesiredStatus: desired, NetworkMode: "none",
				ExecutionRoleCredentials: exec,
				Volumes:                  []*api.Volume{{Name: "out", Type: api.VolumeTypeHost, Host: &api.HostVolumeProperties{SourcePath: outDir}}},
				Containers: []*api.Container{{Name: "app", Image: img.Ref, Essential: true, Memory: 32, Secrets: secrets,
					MountPoints: []api.MountPoint{{SourceVolume: "out", ContainerPath: "/out"}}}}}}}
	}
	good := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	handle(t, a, task(good, "RUNNING",
		api.Secret{Name: "DB_PASSWORD", ValueFrom: "arn:aws:ssm:us-east-1:000000000000:parameter/app/db/password", Type: api.SecretTypeEnv, Provider: api.SecretProviderSSM},
		api.Secret{Name: "API_USER", ValueFrom: aws.ToString(sec.ARN) + ":user:AWSCURRENT:", Type: api.SecretTypeEnv, Provider: api.SecretProviderASM}))
	waitTask(t, a, good, "RUNNING", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskRunning })
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(outDir, "env")); err == nil && len(b) > 0 {
			got = string(b)
			break
		}
	}
	if want := dbPass + "|" + apiUser; got != want {
		t.Fatalf("the container's environment gave %q, want %q", got, want)
	}

	denied := "arn:aws:ecs:us-east-1:000000000000:task/lab/" + randomHex(16)
	handle(t, a, task(denied, "RUNNING",
		api.Secret{Name: "OPS_TOKEN", ValueFrom: "/ops/token", Type: api.SecretTypeEnv, Provider: api.SecretProviderSSM}))
	st := waitTask(t, a, denied, "STOPPED", 2*time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })
	const prefix = "ResourceInitializationError: unable to pull secrets or registry auth: "
	if !strings.HasPrefix(st.StoppedReason, prefix) || !strings.Contains(st.StoppedReason, "OPS_TOKEN") || !strings.Contains(st.StoppedReason, "AccessDenied") {
		t.Errorf("stopped reason %q, want %q naming OPS_TOKEN and AccessDenied", st.StoppedReason, prefix)
	}
	if c := container(st, "app"); c.RuntimeID != "" {
		t.Errorf("the container of a task whose secret failed was created (%s)", c.RuntimeID)
	}

	handle(t, a, task(good, "STOPPED"))
	waitTask(t, a, good, "STOPPED", time.Minute, func(st engine.TaskState) bool { return st.KnownStatus == engine.TaskStopped })

	values := []string{dbPass, apiUser, apiPass, opsToken}
	err = filepath.Walk(h.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range values {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a secret's value in the clear", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, log := range map[string]string{"agent": agentLog.String(), "endpoint": epLog.String()} {
		for _, v := range values {
			if strings.Contains(log, v) {
				t.Errorf("the %s's log holds a secret's value", name)
			}
		}
		if name == "agent" && !strings.Contains(log, good) {
			t.Errorf("the agent's log was not captured (no mention of %s)", good)
		}
	}
}
