package registration_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/registration"
)

func TestRegisterPersistsAndReusesARN(t *testing.T) {
	l := newLab(t, acs.Options{})
	db := openState(t)
	first := l.register(t, db)
	if !strings.Contains(first.ContainerInstanceArn, ":container-instance/lab/") {
		t.Fatalf("ARN = %q, want a container instance of cluster lab", first.ContainerInstanceArn)
	}
	if want := "arn:aws:ecs:us-test-1:123456789012:cluster/lab"; first.ClusterArn != want {
		t.Errorf("ClusterArn = %q, want %q", first.ClusterArn, want)
	}
	stored, err := db.Instance()
	if err != nil || stored.ContainerInstanceArn != first.ContainerInstanceArn {
		t.Fatalf("stored identity = %+v, %v; want ARN %s", stored, err, first.ContainerInstanceArn)
	}
	second := l.register(t, db)
	if second.ContainerInstanceArn != first.ContainerInstanceArn {
		t.Fatalf("re-registration gave %s, want the stored %s", second.ContainerInstanceArn, first.ContainerInstanceArn)
	}
	list, err := l.admin.ListContainerInstances(context.Background(), &ecs.ListContainerInstancesInput{Cluster: aws.String("lab")})
	if err != nil || len(list.ContainerInstanceArns) != 1 {
		t.Fatalf("ListContainerInstances = %+v, %v; want exactly one instance", list, err)
	}

	out, err := l.admin.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
		Cluster: aws.String("lab"), ContainerInstances: []string{first.ContainerInstanceArn},
		// As on AWS, tags come back only when asked for.
		Include: []types.ContainerInstanceField{types.ContainerInstanceFieldTags}})
	if err != nil || len(out.ContainerInstances) != 1 {
		t.Fatalf("DescribeContainerInstances: %v", err)
	}
	ci := out.ContainerInstances[0]
	res := map[string]types.Resource{}
	for _, r := range ci.RegisteredResources {
		res[aws.ToString(r.Name)] = r
	}
	if res["CPU"].IntegerValue != 2048 || res["MEMORY"].IntegerValue != 4096 {
		t.Errorf("registered CPU/MEMORY = %d/%d, want 2048/4096", res["CPU"].IntegerValue, res["MEMORY"].IntegerValue)
	}
	if got := strings.Join(res["PORTS"].StringSetValue, ","); got != "22,51678" {
		t.Errorf("PORTS = %q, want 22,51678", got)
	}
	attrs := map[string]string{}
	for _, a := range ci.Attributes {
		attrs[aws.ToString(a.Name)] = aws.ToString(a.Value)
	}
	for name, want := range map[string]string{
		"ecs.os-type": "linux", "ecs.os-family": "LINUX", "ecs.cpu-architecture": registration.CPUArchitecture("amd64"),
		"stack": "test", "com.amazonaws.ecs.capability.logging-driver.json-file": "",
		"ecs.capability.container-health-check": "", "com.amazonaws.ecs.capability.privileged-container": "",
	} {
		got, ok := attrs[name]
		if !ok || (want != "" && name != "ecs.cpu-architecture" && got != want) {
			t.Errorf("attribute %s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if _, ok := attrs["com.amazonaws.ecs.capability.logging-driver.syslog"]; ok {
		t.Errorf("syslog capability registered, but the options list no shipper that implements it")
	}
	if len(ci.Tags) != 1 || aws.ToString(ci.Tags[0].Key) != "team" {
		t.Errorf("tags = %+v, want team=berth", ci.Tags)
	}
}

func TestRegisterTerminalErrors(t *testing.T) {
	l := newLab(t, acs.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wrongKey, err := registration.NewClient(ctx, registration.ClientOptions{Endpoint: l.ep.URL, Region: testRegion,
		Credentials: credentials.NewStaticCredentialsProvider(l.agentKey.AccessKeyID, "not-the-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		api     registration.RegisterAPI
		cluster string
		hint    string
	}{
		{"missing cluster", l.agentECS.ECS, "nope", "create-cluster --cluster-name nope"},
		{"wrong secret", wrongKey.ECS, "lab", "refused the agent's credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registration.Register(ctx, registration.RegisterOptions{API: tc.api, Store: openState(t), Cluster: tc.cluster, Logger: testLogger(t),
				Resources: registration.Resources{CPU: 1024, MemoryMiB: 512}})
			var te interface{ Terminal() bool }
			if !errors.As(err, &te) || !te.Terminal() {
				t.Fatalf("Register error = %v, want a terminal error", err)
			}
			if !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("error %q does not say what to fix (want %q in it)", err, tc.hint)
			}
		})
	}
}

// flakyRegister fails with the given API errors, then succeeds.
type flakyRegister struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (f *flakyRegister) RegisterContainerInstance(_ context.Context, in *ecs.RegisterContainerInstanceInput, _ ...func(*ecs.Options)) (*ecs.RegisterContainerInstanceOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &ecs.RegisterContainerInstanceOutput{ContainerInstance: &types.ContainerInstance{
		ContainerInstanceArn: aws.String("arn:aws:ecs:r:1:container-instance/" + aws.ToString(in.Cluster) + "/abc")}}, nil
}

// fakeClock fires every After at once and records the delays asked for.
type fakeClock struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (c *fakeClock) Now() time.Time { return time.Unix(1700000000, 0) }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.delays = append(c.delays, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

func TestRegisterRetriesTransientErrorsWithBackoff(t *testing.T) {
	api := &flakyRegister{errs: []error{
		&smithy.GenericAPIError{Code: "ServerException", Message: "try later"},
		&smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"},
		errors.New("dial tcp: connection refused"),
	}}
	clock := &fakeClock{}
	id, err := registration.Register(context.Background(), registration.RegisterOptions{
		API: api, Store: openState(t), Cluster: "c", Clock: clock, Logger: testLogger(t),
		Backoff: registration.Backoff{Min: time.Second, Max: 3 * time.Second},
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if api.calls != 4 || id.ContainerInstanceArn == "" {
		t.Fatalf("calls = %d, identity %+v; want 4 calls and an ARN", api.calls, id)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if len(clock.delays) != len(want) {
		t.Fatalf("delays = %v, want %v", clock.delays, want)
	}
	for i := range want {
		if clock.delays[i] != want[i] {
			t.Errorf("delay %d = %v, want %v", i, clock.delays[i], want[i])
		}
	}
}

func TestRegisterRefusesDataDirOfAnotherCluster(t *testing.T) {
	db := openState(t)
	api := &flakyRegister{}
	if _, err := registration.Register(context.Background(), registration.RegisterOptions{API: api, Store: db, Cluster: "a", Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	_, err := registration.Register(context.Background(), registration.RegisterOptions{API: api, Store: db, Cluster: "b", Logger: testLogger(t)})
	var te *registration.TerminalError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "ECS_DATADIR") {
		t.Fatalf("error = %v, want a terminal error naming ECS_DATADIR", err)
	}
}

func TestBackoffDelays(t *testing.T) {
	b := registration.Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Minute, Jitter: 0.5, Rand: func() float64 { return 1 }}
	if got := b.Delay(0); got != 375*time.Millisecond {
		t.Errorf("Delay(0) = %v, want 375ms (250ms + 50%% jitter)", got)
	}
	if got := b.Delay(30); got != 3*time.Minute {
		t.Errorf("Delay(30) = %v, want the 2m cap plus 50%% jitter", got)
	}
}

// TestCapabilitiesOnlyWhatIsEnforced: task-cpu-mem-limit, selinux and
// apparmor are registered only when the agent enforces them.
func TestCapabilitiesOnlyWhatIsEnforced(t *testing.T) {
	names := map[string]string{
		"task":     "ecs.capability.task-cpu-mem-limit",
		"selinux":  "com.amazonaws.ecs.capability.selinux",
		"apparmor": "com.amazonaws.ecs.capability.apparmor",
	}
	off := registration.Capabilities(registration.CapabilityOptions{})
	on := registration.Capabilities(registration.CapabilityOptions{TaskCPUMemLimit: true, SELinux: true, AppArmor: true})
	for what, name := range names {
		if slices.Contains(off, name) {
			t.Errorf("%s registered without %s enforced", name, what)
		}
		if !slices.Contains(on, name) {
			t.Errorf("%s not registered with %s enforced", name, what)
		}
	}
}
