package registration_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/state"
)

const testRegion = "us-test-1"

// lab is a real cluster endpoint (ECS API and ACS) on loopback with the
// cluster "lab", an admin client and an agent key.
type lab struct {
	ep        *devmode.Endpoint
	admin     *ecs.Client
	agentKey  aws.Credentials
	agentECS  *registration.Client
	dataDir   string
	acsConfig acs.Options
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BERTH_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newLab(t *testing.T, ao acs.Options) *lab {
	t.Helper()
	dir := t.TempDir()
	ep, err := devmode.StartEndpoint(context.Background(), devmode.EndpointOptions{
		DataDir: dir, Region: testRegion, AccountID: "123456789012", ACS: ao, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("start endpoint: %v", err)
	}
	t.Cleanup(func() { ep.Close() })
	l := &lab{ep: ep, dataDir: dir, acsConfig: ao}
	id, secret, err := ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.admin = devmode.NewECSClient(ep.URL, testRegion, aws.Credentials{AccessKeyID: id, SecretAccessKey: secret})
	id, secret, err = ep.Keys.Create(auth.RoleAgent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.agentKey = aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	l.agentECS, err = registration.NewClient(context.Background(), registration.ClientOptions{
		Endpoint: ep.URL, Region: testRegion, Credentials: credentials.StaticCredentialsProvider{Value: l.agentKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.admin.CreateCluster(context.Background(), &ecs.CreateClusterInput{ClusterName: aws.String("lab")}); err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return l
}

func openState(t *testing.T) *state.DB {
	t.Helper()
	db, err := state.OpenDir(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (l *lab) register(t *testing.T, db *state.DB) state.InstanceIdentity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := registration.Register(ctx, registration.RegisterOptions{
		API: l.agentECS.ECS, Store: db, Cluster: "lab",
		Resources:    registration.Resources{CPU: 2048, MemoryMiB: 4096, Ports: []uint16{22, 51678}},
		Capabilities: registration.Capabilities(registration.CapabilityOptions{LoggingDrivers: []string{"json-file", "syslog"}, Privileged: true}),
		Attributes:   map[string]string{"stack": "test"},
		Tags:         map[string]string{"team": "berth"},
		AgentVersion: "test", AgentHash: "abc",
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return id
}

// taskDef registers a one-container task definition and returns its ARN.
func (l *lab) taskDef(t *testing.T, family string) string {
	t.Helper()
	out, err := l.admin.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family),
		ContainerDefinitions: []types.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String("127.0.0.1:5000/app:latest"), Memory: aws.Int32(64), Essential: aws.Bool(true),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(0)}},
		}},
	})
	if err != nil {
		t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

func (l *lab) runTask(t *testing.T, td string) string {
	t.Helper()
	out, err := l.admin.RunTask(context.Background(), &ecs.RunTaskInput{Cluster: aws.String("lab"), TaskDefinition: aws.String(td)})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("RunTask: %v (failures %+v)", err, out)
	}
	return aws.ToString(out.Tasks[0].TaskArn)
}

// recorder is a PayloadHandler and TaskLister that records what arrives.
type recorder struct {
	mu       sync.Mutex
	payloads []*api.PayloadMessage
	fail     int // fail this many more calls
	active   []string
	changed  chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 100)} }

func (r *recorder) HandlePayload(_ context.Context, p *api.PayloadMessage) error {
	r.mu.Lock()
	defer func() {
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}()
	if r.fail > 0 {
		r.fail--
		return errTest
	}
	r.payloads = append(r.payloads, p)
	return nil
}

func (r *recorder) ActiveTaskARNs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.active...)
}

// deliveries returns, per task ARN, the desired statuses received in order,
// and how often each message id arrived.
func (r *recorder) deliveries() (map[string][]string, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byTask, byMsg := map[string][]string{}, map[string]int{}
	for _, p := range r.payloads {
		byMsg[p.MessageID]++
		for _, t := range p.Tasks {
			byTask[t.Arn] = append(byTask[t.Arn], t.DesiredStatus)
		}
	}
	return byTask, byMsg
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("handler refused")

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// devmodeRestart starts the lab's endpoint again on its old address and data.
func devmodeRestart(l *lab, addr string) (*devmode.Endpoint, error) {
	ep, err := devmode.StartEndpoint(context.Background(), devmode.EndpointOptions{
		DataDir: l.dataDir, Listen: addr, Region: testRegion, AccountID: "123456789012", ACS: l.acsConfig,
	})
	if err == nil {
		l.ep = ep
	}
	return ep, err
}
