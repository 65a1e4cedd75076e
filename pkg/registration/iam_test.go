package registration_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/registration"
)

// credRecorder also handles task role credentials refreshes.
type credRecorder struct {
	*recorder
	creds chan *api.IAMRoleCredentialsMessage
}

var _ registration.CredentialsHandler = (*credRecorder)(nil)

func (c *credRecorder) HandleCredentials(_ context.Context, m *api.IAMRoleCredentialsMessage) (*api.IAMRoleCredentialsAckRequest, error) {
	c.creds <- m
	return &api.IAMRoleCredentialsAckRequest{MessageID: m.MessageID, CredentialsID: m.RoleCredentials.CredentialsID,
		Expiration: m.RoleCredentials.Expiration}, nil
}

// TestSessionTaskRoleCredentials: a task with a declared role gets its
// credentials in the payload, and an agent that reconnects gets them again
// in an IAMRoleCredentialsMessage, which the handler applies and acknowledges.
func TestSessionTaskRoleCredentials(t *testing.T) {
	role, err := roles.DevRole("123456789012", "app")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := devmode.StartEndpoint(context.Background(), devmode.EndpointOptions{
		DataDir: t.TempDir(), Region: testRegion, AccountID: "123456789012", Roles: []roles.RoleConfig{role}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	l := &lab{ep: ep}
	aid, asecret, _ := ep.Keys.Create(auth.RoleAdmin, time.Now())
	l.admin = devmode.NewECSClient(ep.URL, testRegion, aws.Credentials{AccessKeyID: aid, SecretAccessKey: asecret})
	gid, gsecret, _ := ep.Keys.Create(auth.RoleAgent, time.Now())
	l.agentECS, err = registration.NewClient(context.Background(), registration.ClientOptions{Endpoint: ep.URL, Region: testRegion,
		Credentials: credentials.StaticCredentialsProvider{Value: aws.Credentials{AccessKeyID: gid, SecretAccessKey: gsecret}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.admin.CreateCluster(context.Background(), &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatal(err)
	}
	id := l.register(t, openState(t))
	td, err := l.admin.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("withrole"), TaskRoleArn: aws.String(role.Arn),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("127.0.0.1:5000/app:latest"),
			Memory: aws.Int32(64), Essential: aws.Bool(true)}},
	})
	if err != nil {
		t.Fatalf("RegisterTaskDefinition with a declared role: %v", err)
	}

	_, err = l.admin.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("badrole"), ExecutionRoleArn: aws.String("arn:aws:iam::123456789012:role/undeclared"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("x"), Memory: aws.Int32(64)}},
	})
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) || !strings.Contains(ip.ErrorMessage(), "executionRoleArn arn:aws:iam::123456789012:role/undeclared is not a role declared") {
		t.Fatalf("task definition naming an undeclared role: want InvalidParameterException, got %v", err)
	}

	rec := &credRecorder{recorder: newRecorder(), creds: make(chan *api.IAMRoleCredentialsMessage, 10)}
	start := func() (stop func()) {
		sess, err := registration.NewSession(registration.SessionOptions{
			API: l.agentECS.ECS, Credentials: l.agentECS.Credentials, Region: testRegion,
			ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
			Handler: rec, Tasks: rec, AgentVersion: "test", AgentHash: "abc",
			Backoff: registration.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = sess.Run(ctx) }()
		return func() { cancel(); wg.Wait() }
	}
	stop := start()
	eventually(t, "agent connected", 30*time.Second, func() bool { return l.agentConnected(t, id.ContainerInstanceArn) })
	taskArn := l.runTask(t, aws.ToString(td.TaskDefinition.TaskDefinitionArn))
	var placed *api.IAMRoleCredentials
	eventually(t, "payload with role credentials", 30*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, p := range rec.payloads {
			for _, tk := range p.Tasks {
				if tk.Arn == taskArn && tk.RoleCredentials != nil {
					placed = tk.RoleCredentials
				}
			}
		}
		return placed != nil
	})
	if placed.RoleArn != role.Arn || placed.AccessKeyID != role.AccessKeyID || placed.CredentialsID == "" {
		t.Fatalf("payload credentials: %s", placed)
	}

	stop()
	stop = start() // the agent reconnects: the endpoint resends the credentials
	defer stop()
	select {
	case m := <-rec.creds:
		if m.TaskArn != taskArn || m.RoleCredentials.CredentialsID != placed.CredentialsID || m.RoleType != api.RoleTypeTaskApplication {
			t.Fatalf("resent credentials: task %s, %s", m.TaskArn, m.RoleCredentials)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no IAMRoleCredentialsMessage after the agent reconnected")
	}

}
