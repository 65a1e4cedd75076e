package iam

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/berth-dev/berth/pkg/api"
)

const (
	taskA = "arn:aws:ecs:us-east-1:123456789012:task/c/aaaa"
	taskB = "arn:aws:ecs:us-east-1:123456789012:task/c/bbbb"
	roleA = "arn:aws:iam::123456789012:role/app"
)

var credsA = Credentials{
	ID: "11111111-2222-4333-8444-555555555555", RoleArn: roleA,
	AccessKeyID: "ASIAAPPKEY", SecretAccessKey: "s3cr3t-app-secret", SessionToken: "tok-app-session",
	Expiration: "2030-01-01T00:00:00Z", RoleType: api.RoleTypeTaskApplication,
}

// fakeTasks is a TaskLookup over a fixed table: the pure logic of the
// source check is under test here, not the engine.
type fakeTasks struct {
	addrs map[string][]netip.Addr
}

var _ TaskLookup = (*fakeTasks)(nil)

func (f *fakeTasks) TaskAddresses(task string) ([]netip.Addr, bool) {
	a, ok := f.addrs[task]
	return a, ok
}

func (f *fakeTasks) TaskByAddress(ip netip.Addr) (string, bool) {
	for t, as := range f.addrs {
		for _, a := range as {
			if a == ip {
				return t, true
			}
		}
	}
	return "", false
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestServer(t *testing.T, opts Options) (*Server, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	if opts.Store == nil {
		opts.Store = NewStore()
	}
	opts.Audit = NewAuditLog(buf)
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, buf
}

func do(t *testing.T, h http.Handler, path, remote string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = remote
	r.Header.Set("User-Agent", "test-agent/1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestCredentialsResponses(t *testing.T) {
	store := NewStore()
	store.Set(taskA, credsA)
	store.Expect(taskB, api.RoleTypeTaskApplication, "restored-id")
	s, audit := newTestServer(t, Options{Store: store})
	okBody := `{"RoleArn":"arn:aws:iam::123456789012:role/app","AccessKeyId":"ASIAAPPKEY","SecretAccessKey":"s3cr3t-app-secret","Token":"tok-app-session","Expiration":"2030-01-01T00:00:00Z"}`
	cases := []struct {
		name, path string
		status     int
		body       string
	}{
		{"v2 ok", "/v2/credentials/" + credsA.ID, 200, okBody},
		{"v1 ok", "/v1/credentials?id=" + credsA.ID, 200, okBody},
		{"v2 no id", "/v2/credentials/", 400, `{"code":"NoIdInRequest","message":"CredentialsV2Request: No Credential ID in the request"}`},
		{"v2 no id no slash", "/v2/credentials", 400, `{"code":"NoIdInRequest","message":"CredentialsV2Request: No Credential ID in the request"}`},
		{"v1 no id", "/v1/credentials", 400, `{"code":"NoIdInRequest","message":"CredentialsV1Request: No Credential ID in the request"}`},
		{"v2 unknown", "/v2/credentials/nope", 400, `{"code":"InvalidIdInRequest","message":"CredentialsV2Request: Credentials not found"}`},
		{"v1 unknown", "/v1/credentials?id=nope", 400, `{"code":"InvalidIdInRequest","message":"CredentialsV1Request: Credentials not found"}`},
		{"v2 uninitialized", "/v2/credentials/restored-id", 503, `{"code":"CredentialsUninitialized","message":"CredentialsV2Request: Credentials uninitialized for ID"}`},
		{"v1 uninitialized", "/v1/credentials?id=restored-id", 503, `{"code":"CredentialsUninitialized","message":"CredentialsV1Request: Credentials uninitialized for ID"}`},
		{"other path", "/v2/other", 404, "404 page not found\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := do(t, s, c.path, "10.9.0.5:40000")
			if status != c.status || body != c.body {
				t.Fatalf("GET %s: want %d %s\n got %d %s", c.path, c.status, c.body, status, body)
			}
		})
	}
	log := audit.String()
	for _, secret := range []string{credsA.SecretAccessKey, credsA.SessionToken, credsA.ID, "restored-id"} {
		if strings.Contains(log, secret) {
			t.Fatalf("audit log contains %q:\n%s", secret, log)
		}
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != len(cases)-1 {
		t.Fatalf("want %d audit lines (one per credentials request), got %d:\n%s", len(cases)-1, len(lines), log)
	}
	want := `200 10.9.0.5:40000 "/v2/credentials" "test-agent/1" ` + roleA + " " + taskA + " GetCredentials"
	if !strings.Contains(lines[0], want) {
		t.Fatalf("first audit line: want it to contain %q, got %q", want, lines[0])
	}
}

func TestRefreshReplacesAndStopForgets(t *testing.T) {
	store := NewStore()
	store.Expect(taskA, api.RoleTypeTaskApplication, credsA.ID)
	ack, err := store.ApplyRefresh(&api.IAMRoleCredentialsMessage{
		MessageID: "m1", TaskArn: taskA, RoleType: api.RoleTypeTaskApplication,
		RoleCredentials: &api.IAMRoleCredentials{CredentialsID: credsA.ID, RoleArn: roleA,
			AccessKeyID: "ASIANEW", SecretAccessKey: "x", SessionToken: "y", Expiration: "2031-01-01T00:00:00Z"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ack.MessageID != "m1" || ack.CredentialsID != credsA.ID || ack.Expiration != "2031-01-01T00:00:00Z" {
		t.Fatalf("ack: %+v", ack)
	}
	e, ok := store.Get(credsA.ID)
	if !ok || !e.Initialized || e.Credentials.AccessKeyID != "ASIANEW" {
		t.Fatalf("after refresh: %+v %v", e, ok)
	}
	// A new id for the same role replaces the old one.
	n := credsA
	n.ID = "new-id"
	store.Set(taskA, n)
	if _, ok := store.Get(credsA.ID); ok {
		t.Fatal("old id still served after a new id for the same role arrived")
	}
	store.Set(taskA, Credentials{ID: "exec-id", RoleType: api.RoleTypeTaskExecution, AccessKeyID: "ASIAEXEC"})
	if c, ok := store.TaskCredentials(taskA, api.RoleTypeTaskExecution); !ok || c.AccessKeyID != "ASIAEXEC" {
		t.Fatalf("execution credentials: %+v %v", c, ok)
	}
	store.Set(taskB, Credentials{ID: "b-id", RoleType: api.RoleTypeTaskApplication})
	if n := store.Prune(func(arn string) bool { return arn == taskA }); n != 1 {
		t.Fatalf("prune removed %d ids, want task B's one", n)
	}
	store.RemoveTask(taskA)
	if store.Len() != 0 {
		t.Fatalf("after RemoveTask the store holds %d ids", store.Len())
	}
	if _, err := store.ApplyRefresh(&api.IAMRoleCredentialsMessage{TaskArn: taskA}); err == nil {
		t.Fatal("refresh without credentials accepted")
	}
}

func TestSourceAddressCheck(t *testing.T) {
	store := NewStore()
	store.Set(taskA, credsA)
	hostCreds := credsA
	hostCreds.ID = "host-task-id"
	store.Set(taskB, hostCreds) // taskB is host-network: no addresses
	tasks := &fakeTasks{addrs: map[string][]netip.Addr{
		taskA:        {netip.MustParseAddr("10.9.0.5")},
		"other-task": {netip.MustParseAddr("10.9.0.6")},
	}}
	s, audit := newTestServer(t, Options{Store: store, Tasks: tasks})
	cases := []struct {
		name, id, remote string
		status           int
	}{
		{"own task", credsA.ID, "10.9.0.5:1234", 200},
		{"other task's address", credsA.ID, "10.9.0.6:1234", 400},
		{"host address for bridge task", credsA.ID, "127.0.0.1:1234", 400},
		{"host task from host", "host-task-id", "127.0.0.1:1234", 200},
		{"host task from a bridge task", "host-task-id", "10.9.0.6:1234", 400},
	}
	for _, c := range cases {
		status, body := do(t, s, "/v2/credentials/"+c.id, c.remote)
		if status != c.status {
			t.Errorf("%s: want %d, got %d %s", c.name, c.status, status, body)
		}
		if status == 400 && !strings.Contains(body, ErrInvalidIDInRequest) {
			t.Errorf("%s: refusal must look like an unknown id, got %s", c.name, body)
		}
	}
	if n := strings.Count(audit.String(), EventSourceRefused); n != 3 {
		t.Fatalf("want 3 %s audit lines, got %d:\n%s", EventSourceRefused, n, audit.String())
	}
}

func TestRateLimitPerClientIP(t *testing.T) {
	now := time.Unix(1000, 0)
	store := NewStore()
	store.Set(taskA, credsA)
	s, audit := newTestServer(t, Options{Store: store, RateLimit: RateLimit{RPS: 1, Burst: 3}, Now: func() time.Time { return now }})
	path := "/v2/credentials/" + credsA.ID
	for i := 0; i < 3; i++ {
		if st, _ := do(t, s, path, "10.0.0.1:1"); st != 200 {
			t.Fatalf("request %d within burst: %d", i, st)
		}
	}
	if st, _ := do(t, s, path, "10.0.0.1:1"); st != http.StatusTooManyRequests {
		t.Fatalf("request beyond burst: want 429, got %d", st)
	}
	if st, _ := do(t, s, path, "10.0.0.2:1"); st != 200 {
		t.Fatalf("another client IP is limited separately: got %d", st)
	}
	now = now.Add(time.Second)
	if st, _ := do(t, s, path, "10.0.0.1:1"); st != 200 {
		t.Fatalf("after one second one token is back: got %d", st)
	}
	if !strings.Contains(audit.String(), " 429 10.0.0.1:1 ") {
		t.Fatalf("429 not audited:\n%s", audit.String())
	}
}

// fakeMetadata serves one task with one container.
type fakeMetadata struct{}

func (fakeMetadata) TaskMetadata(id string) (TaskMetadata, string, bool) {
	if id != "meta-1" {
		return TaskMetadata{}, "", false
	}
	mem := int64(128)
	return TaskMetadata{Cluster: "c", TaskARN: taskA, Family: "web", Revision: "3", KnownStatus: "RUNNING",
		Containers: []ContainerMetadata{{DockerID: "d1", Name: "app", Image: "busybox", KnownStatus: "RUNNING",
			DesiredStatus: "RUNNING", Type: "NORMAL", Limits: Limits{Memory: &mem}}}}, "d1", true
}

func (fakeMetadata) TaskStats(_ context.Context, id string) (map[string]*ContainerStats, bool) {
	if id != "meta-1" {
		return nil, false
	}
	return map[string]*ContainerStats{"d1": {ID: "d1", Name: "app", MemoryStats: MemoryStats{Usage: 42}}}, true
}

func TestTaskMetadataV4(t *testing.T) {
	s, _ := newTestServer(t, Options{Metadata: fakeMetadata{}})
	cases := []struct {
		path   string
		status int
		has    string
	}{
		{"/v4/meta-1", 200, `"DockerId":"d1","Name":"app"`},
		{"/v4/meta-1/task", 200, `"Cluster":"c","TaskARN":"` + taskA + `","Family":"web","Revision":"3"`},
		{"/v4/meta-1/stats", 200, `"memory_stats":{"usage":42}`},
		{"/v4/meta-1/task/stats", 200, `{"d1":{`},
		{"/v3/meta-1/task", 200, `"Family":"web"`},
		{"/v4/unknown", 404, `"code":"NotFound"`},
		{"/v4/unknown/task", 404, `"code":"NotFound"`},
		{"/v4/meta-1/bogus", 404, ""},
	}
	for _, c := range cases {
		status, body := do(t, s, c.path, "127.0.0.1:5")
		if status != c.status || !strings.Contains(body, c.has) {
			t.Errorf("GET %s: want %d containing %s, got %d %s", c.path, c.status, c.has, status, body)
		}
	}
}

// TestHTTPWithSDKProvider serves on a real loopback listener and fetches
// the credentials with the AWS SDK's own container credentials provider,
// which proves the wire shape the SDKs parse.
func TestHTTPWithSDKProvider(t *testing.T) {
	store := NewStore()
	store.Set(taskA, credsA)
	s, audit := newTestServer(t, Options{Store: store, RateLimit: RateLimit{RPS: 40, Burst: 60}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	p := endpointcreds.New(base + CredentialsRelativeURI(credsA.ID))
	got, err := p.Retrieve(ctx)
	if err != nil {
		t.Fatalf("SDK provider: %v", err)
	}
	if got.AccessKeyID != credsA.AccessKeyID || got.SecretAccessKey != credsA.SecretAccessKey ||
		got.SessionToken != credsA.SessionToken || !got.Expires.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("SDK got %+v", got)
	}
	if _, err := endpointcreds.New(base + CredentialsRelativeURI("wrong")).Retrieve(ctx); err == nil ||
		!strings.Contains(err.Error(), ErrInvalidIDInRequest) {
		t.Fatalf("wrong id through the SDK: want an error naming %s, got %v", ErrInvalidIDInRequest, err)
	}
	resp, err := http.Get(base + "/v1/credentials?id=" + credsA.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body map[string]string
	if err := json.Unmarshal(b, &body); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("v1 body %s (%v), content type %q", b, err, resp.Header.Get("Content-Type"))
	}
	if len(body) != 5 || body["RoleArn"] != roleA || body["Token"] != credsA.SessionToken {
		t.Fatalf("v1 body has other fields than ECS's five: %s", b)
	}
	if !strings.Contains(audit.String(), " 127.0.0.1:") {
		t.Fatalf("audit lines lack the source address:\n%s", audit.String())
	}
}

func TestContainerEnvAndIDs(t *testing.T) {
	env := ContainerEnv("cid", "mid")
	want := []string{
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/cid",
		"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/mid",
		"ECS_CONTAINER_METADATA_URI=http://169.254.170.2/v3/mid",
	}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Fatalf("env: want %q, got %q", want, env)
	}
	if len(ContainerEnv("", "")) != 0 {
		t.Fatal("env without ids is not empty")
	}
	a, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Fatalf("ids %q %q are not fresh v4 UUIDs", a, b)
	}
	if s := credsA.String(); strings.Contains(s, credsA.SecretAccessKey) || strings.Contains(s, credsA.SessionToken) {
		t.Fatalf("String leaks a secret: %s", s)
	}
}
