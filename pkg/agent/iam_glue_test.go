package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/runtime"
)

const (
	bridgeTask = "arn:aws:ecs:us-east-1:123456789012:task/c/bridge1"
	hostTask   = "arn:aws:ecs:us-east-1:123456789012:task/c/host1"
)

// fakeTasks returns fixed task states: the lookups' mapping is under test.
type fakeTasks struct{ tasks []engine.TaskState }

func (f *fakeTasks) Tasks() []engine.TaskState { return f.tasks }

func (f *fakeTasks) Task(arn string) (engine.TaskState, bool) {
	for _, t := range f.tasks {
		if t.Def.ARN == arn {
			return t, true
		}
	}
	return engine.TaskState{}, false
}

type fakeStats struct{}

func (fakeStats) Stats(context.Context, string) (runtime.Stats, error) {
	return runtime.Stats{MemoryUsageBytes: 4096, CPUUsageNanos: 7, Pids: 2}, nil
}

func decorated(t *testing.T, arn, mode, ip string, role bool) engine.TaskState {
	t.Helper()
	at := &api.Task{Arn: arn}
	if role {
		at.RoleCredentials = &api.IAMRoleCredentials{CredentialsID: "cred-" + arn[len(arn)-7:]}
	}
	def := engine.TaskDef{ARN: arn, Family: "web", Version: "4", Cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/c",
		NetworkMode: mode, MemoryMiB: 256,
		Containers: []engine.ContainerDef{{Name: "app", Image: "busybox", CPU: 128, MemoryMiB: 64,
			Spec: container.Spec{Env: []string{"A=b"}, Labels: map[string]string{"l": "v"}}},
			{Name: "side", Image: "busybox"}}}
	if err := decorateTask(&def, at); err != nil {
		t.Fatal(err)
	}
	started := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return engine.TaskState{Def: def, DesiredStatus: engine.TaskRunning, KnownStatus: engine.TaskRunning, IPv4: ip,
		Containers: []*engine.ContainerState{
			{Name: "app", RuntimeID: "rt-app", ImageDigest: "sha256:abc", KnownStatus: engine.ContainerRunning,
				DesiredStatus: engine.ContainerRunning, StartedAt: started,
				Bindings: []api.NetworkBinding{{ContainerPort: 80, HostPort: 32768, Protocol: "tcp", BindIP: "0.0.0.0"}}},
			{Name: "side", RuntimeID: "rt-side", KnownStatus: engine.ContainerRunning, DesiredStatus: engine.ContainerRunning},
		}}
}

func TestDecorateTaskAndRestoreIDs(t *testing.T) {
	b := decorated(t, bridgeTask, "bridge", "10.1.0.5", true)
	h := decorated(t, hostTask, "host", "", false)
	app := b.Def.Containers[0].Spec.Env
	if envValue(app, "A") != "b" || envValue(app, iam.EnvCredentialsRelativeURI) != "/v2/credentials/cred-bridge1" {
		t.Fatalf("env: %q", app)
	}
	m1, m2 := metadataID(&b.Def.Containers[0]), metadataID(&b.Def.Containers[1])
	if m1 == "" || m1 == m2 || !strings.HasPrefix(envValue(app, iam.EnvMetadataURIV4), "http://169.254.170.2/v4/") {
		t.Fatalf("metadata ids %q %q, env %q", m1, m2, app)
	}
	if envValue(h.Def.Containers[0].Spec.Env, iam.EnvCredentialsRelativeURI) != "" {
		t.Fatal("a task without a role got a credentials URI")
	}
	store := iam.NewStore()
	if n := restoreCredentialIDs(store, &fakeTasks{tasks: []engine.TaskState{b, h}}); n != 1 {
		t.Fatalf("restored %d ids, want 1", n)
	}
	if e, ok := store.Get("cred-bridge1"); !ok || e.Initialized || e.TaskArn != bridgeTask {
		t.Fatalf("restored entry: %+v %v", e, ok)
	}
}

func TestTaskLookup(t *testing.T) {
	b := decorated(t, bridgeTask, "bridge", "10.1.0.5", true)
	h := decorated(t, hostTask, "host", "", false)
	l := &taskLookup{tasks: &fakeTasks{tasks: []engine.TaskState{b, h}}, stats: fakeStats{}, availabilityZone: "lab-1a"}
	if a, ok := l.TaskAddresses(bridgeTask); !ok || len(a) != 1 || a[0] != netip.MustParseAddr("10.1.0.5") {
		t.Fatalf("bridge task addresses: %v %v", a, ok)
	}
	if _, ok := l.TaskAddresses(hostTask); ok {
		t.Fatal("host task reported addresses")
	}
	if arn, ok := l.TaskByAddress(netip.MustParseAddr("10.1.0.5")); !ok || arn != bridgeTask {
		t.Fatalf("by address: %q %v", arn, ok)
	}
	side := metadataID(&b.Def.Containers[1])
	md, docker, ok := l.TaskMetadata(side)
	if !ok || docker != "rt-side" || md.TaskARN != bridgeTask || md.Revision != "4" || md.KnownStatus != "RUNNING" ||
		md.AvailabilityZone != "lab-1a" || len(md.Containers) != 2 || *md.Limits.Memory != 256 {
		t.Fatalf("task metadata: %+v %q %v", md, docker, ok)
	}
	app := md.Containers[0]
	js, _ := json.Marshal(app)
	for _, want := range []string{`"DockerId":"rt-app"`, `"ImageID":"sha256:abc"`, `"Labels":{"l":"v"}`, `"KnownStatus":"RUNNING"`,
		`"Limits":{"CPU":128,"Memory":64}`, `"StartedAt":"2030-01-01T00:00:00Z"`, `"Type":"NORMAL"`,
		`"Networks":[{"NetworkMode":"bridge","IPv4Addresses":["10.1.0.5"]}]`,
		`"Ports":[{"ContainerPort":80,"Protocol":"tcp","HostPort":32768,"HostIp":"0.0.0.0"}]`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("container metadata lacks %s: %s", want, js)
		}
	}
	stats, ok := l.TaskStats(context.Background(), side)
	if !ok || len(stats) != 2 || stats["rt-app"].MemoryStats.Usage != 4096 {
		t.Fatalf("stats: %v %v", stats, ok)
	}
	if _, _, ok := l.TaskMetadata("unknown"); ok {
		t.Fatal("unknown metadata id resolved")
	}
}

// TestServeCredentialsInstallsAndRemovesRoute runs the service with a route on a
// private bridge and checks the rules exist while it serves and are gone
// after a clean stop.
func TestServeCredentialsInstallsAndRemovesRoute(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "iptables-save")
	const bridge = "btiamsvc0"
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	comment := "berth:iam-svc-test"
	count := func() int {
		out, err := exec.Command("iptables-save").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, out)
		}
		return strings.Count(string(out), comment)
	}
	store := iam.NewStore()
	store.Set(bridgeTask, iam.Credentials{ID: "svc-id", AccessKeyID: "ASIASVC", RoleType: api.RoleTypeTaskApplication})
	audit := filepath.Join(t.TempDir(), "audit", "audit.log")
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addr := netip.MustParseAddrPort("127.0.0.1:0")
	go func() {
		done <- serveCredentials(ctx, credentialsOptions{Store: store, Addr: addr, AuditLogFile: audit, Ready: ready,
			Route: &network.CredentialsRoute{Bridge: bridge, Comment: comment}})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("service ended: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("service not ready")
	}
	if n := count(); n != 2 {
		t.Errorf("while serving: want 2 rules (PREROUTING DNAT, INPUT guard), got %d", n)
	}
	port := routePort(t, comment)
	resp, err := http.Get("http://127.0.0.1:" + port + "/v2/credentials/svc-id")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ASIASVC") {
		t.Fatalf("served %d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if n := count(); n != 0 {
		t.Errorf("after a clean stop %d rules remain", n)
	}
	if b, err := os.ReadFile(audit); err != nil || !strings.Contains(string(b), " 200 127.0.0.1:") {
		t.Fatalf("audit file: %v %q", err, b)
	}
}

// routePort reads the listener port from the DNAT rule, which
// serveCredentials set from the listener it opened on port 0.
func routePort(t *testing.T, comment string) string {
	out, _ := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, comment) {
			if _, after, ok := strings.Cut(l, "--to-destination 127.0.0.1:"); ok {
				return strings.Fields(after)[0]
			}
		}
	}
	t.Fatalf("no DNAT rule with %s:\n%s", comment, out)
	return ""
}
