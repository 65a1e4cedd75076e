package acs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/gorilla/websocket"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/ecsapi"
	"github.com/berth-dev/berth/pkg/cluster/launch"
	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/roles"
	"github.com/berth-dev/berth/pkg/cluster/store"
	"github.com/berth-dev/berth/pkg/cluster/store/boltstore"
)

const region = "us-test-1"

type fixture struct {
	srv         *httptest.Server
	acs         *acs.Server
	st          store.Store
	keyA, keyB  aws.Credentials
	admin       *ecs.Client
	instanceArn string
	clusterArn  string
}

func client(url string, c aws.Credentials) *ecs.Client {
	return ecs.New(ecs.Options{Region: region, BaseEndpoint: aws.String(url), Credentials: credentials.StaticCredentialsProvider{Value: c}})
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith builds the fixture with creds as the session server's
// credentials broker (nil: none).
func newFixtureWith(t *testing.T, creds acs.CredentialsBroker) *fixture {
	t.Helper()
	return newFixtureOpts(t, func(o *acs.Options) { o.Credentials = creds })
}

// newFixtureOpts builds the fixture with the session server's options
// changed by opt.
func newFixtureOpts(t *testing.T, opt func(*acs.Options)) *fixture {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "cluster.db"), boltstore.Options{Buckets: append(records.Buckets(), auth.KeysBucket, acs.SessionsBucket)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := auth.NewKeyring(st, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	v := &auth.Verifier{Keys: kr, Region: region, Services: []string{"ecs"}}
	o := acs.Options{Store: st, Verifier: v}
	opt(&o)
	a, err := acs.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ecsAPI, err := ecsapi.New(ecsapi.Options{Store: st, Notifier: a,
		Launcher: &launch.Launcher{ARNs: records.ARNs{Region: region, AccountID: "123456789012"}}})
	if err != nil {
		t.Fatal(err)
	}
	router, err := awsproto.New(awsproto.Options{Verifier: v, APIs: []awsproto.API{ecsAPI.API()}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", router)
	mux.Handle("GET /ws", a)
	mux.Handle("GET "+ecsapi.TelemetryPath+"/ws", a.Telemetry())
	f := &fixture{srv: httptest.NewServer(mux), acs: a, st: st}
	t.Cleanup(func() { a.Close(); f.srv.Close() })
	mk := func(role auth.Role) aws.Credentials {
		id, secret, err := kr.Create(role, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	}
	f.admin = client(f.srv.URL, mk(auth.RoleAdmin))
	f.keyA, f.keyB = mk(auth.RoleAgent), mk(auth.RoleAgent)
	ctx := context.Background()
	if _, err := f.admin.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("c")}); err != nil {
		t.Fatal(err)
	}
	out, err := client(f.srv.URL, f.keyA).RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		Cluster: aws.String("c"),
		TotalResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 512}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.instanceArn = aws.ToString(out.ContainerInstance.ContainerInstanceArn)
	f.clusterArn = f.instanceArn[:strings.Index(f.instanceArn, ":container-instance/")] + ":cluster/c"
	return f
}

// dial opens the session signed with creds (nil: unsigned).
func (f *fixture) dial(t *testing.T, creds *aws.Credentials, instanceArn string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	q := url.Values{"clusterArn": {f.clusterArn}, "containerInstanceArn": {instanceArn}, "seqNum": {"1"}, "protocolVersion": {"2"}}
	return f.dialURL(t, creds, f.srv.URL+"/ws?"+q.Encode())
}

// dialURL opens a websocket at plain (an http:// URL) signed with creds.
func (f *fixture) dialURL(t *testing.T, creds *aws.Credentials, plain string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if creds != nil {
		req, _ := http.NewRequest(http.MethodGet, plain, nil)
		sum := sha256.Sum256(nil)
		if err := v4.NewSigner().SignHTTP(context.Background(), *creds, req, hex.EncodeToString(sum[:]), "ecs", region, time.Now()); err != nil {
			t.Fatal(err)
		}
		h.Set("Authorization", req.Header.Get("Authorization"))
		h.Set("X-Amz-Date", req.Header.Get("X-Amz-Date"))
	}
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(plain, "http"), h)
}

func (f *fixture) connected(t *testing.T) bool {
	t.Helper()
	out, err := f.admin.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String("c"), ContainerInstances: []string{f.instanceArn}})
	if err != nil || len(out.ContainerInstances) != 1 {
		t.Fatalf("DescribeContainerInstances: %v", err)
	}
	return out.ContainerInstances[0].AgentConnected
}

func TestHandshakeRefusals(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name     string
		creds    *aws.Credentials
		instance string
		status   int
		errType  string
	}{
		{"unsigned", nil, f.instanceArn, http.StatusForbidden, "MissingAuthenticationTokenException"},
		{"another agent's instance", &f.keyB, f.instanceArn, http.StatusForbidden, "AccessDeniedException"},
		{"unknown instance", &f.keyA, strings.Replace(f.instanceArn, "/c/", "/c/0", 1), http.StatusBadRequest, api.TypeInvalidInstanceException},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := f.dial(t, tc.creds, tc.instance)
			if err == nil || resp == nil {
				t.Fatalf("handshake succeeded (%v), want HTTP %d", err, tc.status)
			}
			defer resp.Body.Close()
			var body struct {
				Type string `json:"__type"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.status || !strings.Contains(body.Type, strings.TrimSuffix(tc.errType, "Exception")) {
				t.Errorf("HTTP %d %q, want %d %s", resp.StatusCode, body.Type, tc.status, tc.errType)
			}
		})
	}
}

func TestSessionManifestAndAgentConnected(t *testing.T) {
	f := newFixture(t)
	if f.connected(t) {
		t.Fatal("agentConnected before any session")
	}
	conn, _, err := f.dial(t, &f.keyA, f.instanceArn)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	frame, err := api.DecodeFrame(data)
	if m, ok := frame.(*api.TaskManifestMessage); !ok || err != nil || m.ContainerInstanceArn != f.instanceArn {
		t.Fatalf("first frame = %T %+v (%v), want this instance's TaskManifestMessage", frame, frame, err)
	}
	if !f.connected(t) {
		t.Error("agentConnected false while a session is open")
	}
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for f.connected(t) {
		if time.Now().After(deadline) {
			t.Fatal("agentConnected still true after the session closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInactiveInstanceIsTold(t *testing.T) {
	f := newFixture(t)
	if _, err := f.admin.DeregisterContainerInstance(context.Background(), &ecs.DeregisterContainerInstanceInput{
		Cluster: aws.String("c"), ContainerInstance: aws.String(f.instanceArn)}); err != nil {
		t.Fatal(err)
	}
	conn, _, err := f.dial(t, &f.keyA, f.instanceArn)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := api.DecodeFrame(data)
	if e, ok := frame.(*api.ErrorFrame); !ok || e.Type != api.TypeInactiveInstanceException {
		t.Fatalf("frame = %T %+v, want InactiveInstanceException", frame, frame)
	}
}

func TestNewServerClearsStaleAgentConnected(t *testing.T) {
	f := newFixture(t)
	conn, _, err := f.dial(t, &f.keyA, f.instanceArn)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !f.connected(t) {
		if time.Now().After(deadline) {
			t.Fatal("agentConnected not set by the session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second server on the same store stands for an endpoint restarted
	// after a crash: the old session's flag must not survive.
	if _, err := acs.New(acs.Options{Store: f.st, Verifier: &auth.Verifier{}}); err != nil {
		t.Fatal(err)
	}
	if f.connected(t) {
		t.Error("agentConnected still true after a new session server started")
	}
}

// TestPayloadCarriesRoleCredentials: a task whose definition names a role
// gets credentials from the broker in its payload; the agent's
// IAMRoleCredentialsAckRequest reaches the broker; refreshes go out through
// SendCredentials.
func TestPayloadCarriesRoleCredentials(t *testing.T) {
	role, err := roles.DevRole("123456789012", "app")
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := roles.New(roles.Options{Roles: []roles.RoleConfig{role}})
	if err != nil {
		t.Fatal(err)
	}
	var f *fixture
	broker, err := roles.NewBroker(roles.BrokerOptions{Issuer: issuer, IDKey: []byte("k"),
		Sender: roles.SenderFunc(func(ctx context.Context, arn string, m *api.IAMRoleCredentialsMessage) error {
			return f.acs.SendCredentials(ctx, arn, m)
		})})
	if err != nil {
		t.Fatal(err)
	}
	f = newFixtureWith(t, broker)
	ctx := context.Background()
	if _, err := f.admin.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("app"), TaskRoleArn: aws.String(role.Arn),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("c"), Image: aws.String("busybox"), Memory: aws.Int32(16)}},
	}); err != nil {
		t.Fatal(err)
	}
	conn, _, err := f.dial(t, &f.keyA, f.instanceArn)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	read := func(want string) api.Frame {
		t.Helper()
		for {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			fr, err := api.DecodeFrame(data)
			if err == nil && fr.FrameType() == want {
				return fr
			}
		}
	}
	read(api.TypeTaskManifestMessage)
	deadline := time.Now().Add(5 * time.Second)
	for !f.connected(t) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out, err := f.admin.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("app")})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("RunTask: %v %+v", err, out)
	}
	taskArn := aws.ToString(out.Tasks[0].TaskArn)
	p := read(api.TypePayloadMessage).(*api.PayloadMessage)
	c := p.Tasks[0].RoleCredentials
	if c == nil || c.RoleArn != role.Arn || c.CredentialsID != roles.DeriveCredentialsID([]byte("k"), taskArn, api.RoleTypeTaskApplication) ||
		c.AccessKeyID == "" || p.Tasks[0].ExecutionRoleCredentials != nil {
		t.Fatalf("payload credentials = %v / exec %v, want the role's with the derived id and no execution role", c, p.Tasks[0].ExecutionRoleCredentials)
	}
	// A refresh (here: the resend on reconnect) arrives as an
	// IAMRoleCredentialsMessage; its ack clears the broker's pending state.
	broker.ResendInstance(f.instanceArn)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); broker.Run(rctx) }()
	defer func() { cancel(); <-done }()
	m := read(api.TypeIAMRoleCredentialsMessage).(*api.IAMRoleCredentialsMessage)
	if m.TaskArn != taskArn || m.RoleCredentials == nil || m.RoleCredentials.CredentialsID != c.CredentialsID {
		t.Fatalf("credentials message = %+v, want the task's current credentials", m)
	}
	if !broker.Pending(taskArn, api.RoleTypeTaskApplication) {
		t.Fatal("broker does not wait for an ack of the sent credentials")
	}
	b, _ := api.EncodeFrame(&api.IAMRoleCredentialsAckRequest{MessageID: m.MessageID, CredentialsID: m.RoleCredentials.CredentialsID})
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for broker.Pending(taskArn, api.RoleTypeTaskApplication) {
		if time.Now().After(deadline) {
			t.Fatal("the agent's IAMRoleCredentialsAckRequest did not reach the broker")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A running task's refresh is queued; a stopped or unknown task's is
	// refused with roles.ErrTaskEnded, which makes the broker drop it (a
	// task that stops on its own gets no STOPPED payload to untrack it).
	if err := f.acs.SendCredentials(ctx, f.instanceArn, &api.IAMRoleCredentialsMessage{MessageID: "m1", TaskArn: taskArn}); err != nil {
		t.Fatalf("SendCredentials for a running task: %v", err)
	}
	if _, err := f.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: aws.String(taskArn)}); err != nil {
		t.Fatal(err)
	}
	for _, arn := range []string{taskArn, strings.Replace(taskArn, ":task/c/", ":task/c/0000", 1)} {
		err := f.acs.SendCredentials(ctx, f.instanceArn, &api.IAMRoleCredentialsMessage{MessageID: "m2", TaskArn: arn})
		if !errors.Is(err, roles.ErrTaskEnded) {
			t.Errorf("SendCredentials for stopped or unknown task %s: want roles.ErrTaskEnded, got %v", arn, err)
		}
	}
}
