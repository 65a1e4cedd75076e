package iam_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/runtime"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// Names of this test's private host networking.
const (
	e2eBridge = "btiam0"
	e2eSubnet = "10.254.170.0/24"
	e2eTaskA  = "arn:aws:ecs:us-east-1:123456789012:task/e2e/aaaa"
	e2eTaskB  = "arn:aws:ecs:us-east-1:123456789012:task/e2e/bbbb"
)

// sandboxTasks is the agent's TaskLookup in miniature: task ARN to the
// sandbox IP pkg/network handed out.
type sandboxTasks struct {
	mu    sync.Mutex
	addrs map[string]netip.Addr
}

var _ iam.TaskLookup = (*sandboxTasks)(nil)

func (s *sandboxTasks) TaskAddresses(task string) ([]netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.addrs[task]
	if !ok {
		return nil, false
	}
	return []netip.Addr{a}, true
}

// staticMetadata serves one metadata id per task.
type staticMetadata map[string]iam.TaskMetadata

func (m staticMetadata) TaskMetadata(id string) (iam.TaskMetadata, string, bool) {
	t, ok := m[id]
	if !ok {
		return iam.TaskMetadata{}, "", false
	}
	return t, t.Containers[0].DockerID, true
}

func (m staticMetadata) TaskStats(_ context.Context, id string) (map[string]*iam.ContainerStats, bool) {
	t, ok := m[id]
	if !ok {
		return nil, false
	}
	return map[string]*iam.ContainerStats{t.Containers[0].DockerID: {ID: t.Containers[0].DockerID}}, true
}

func (s *sandboxTasks) TaskByAddress(ip netip.Addr) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, a := range s.addrs {
		if a == ip {
			return t, true
		}
	}
	return "", false
}

// serveOn runs an iam.Server on addr until the returned stop is called.
func serveOn(t *testing.T, addr string, opts iam.Options) (stop func()) {
	t.Helper()
	s, err := iam.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		// After a restart the port may linger for a moment.
		if ln, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestEndToEndBridgeTasks runs real containers in two bridge sandboxes
// that reach the server as 169.254.170.2 through pkg/network's route, and
// fetches credentials with the AWS SDK's default chain.
func TestEndToEndBridgeTasks(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "runc", "iptables", "iptables-save", "go")
	ctx := context.Background()

	probe := testenv.BuildStatic(t, "github.com/berth-dev/berth/internal/testenv/cmd/credprobe")
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "iam/probe", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/probe", Mode: 0o755, Data: probe}},
		Cmd:   []string{"/probe"},
	})

	// Private networking: bridge, subnet, dirs; leftovers of an interrupted
	// run are reclaimed first.
	dir := "/run/berth-iamtest"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	t.Cleanup(func() { _ = network.ReleaseNetnsDir(filepath.Join(dir, "netns")) }) // the bind CreateNetns made
	nm, err := network.New(network.Options{
		ConfDir: filepath.Join(dir, "conf"), NetworkName: "bt-iam", Bridge: e2eBridge, Subnet: e2eSubnet,
		IPAMDir: filepath.Join(dir, "ipam"), NetnsDir: filepath.Join(dir, "netns"),
		StateDir: filepath.Join(dir, "state"), NamePrefix: "btiam-",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nm.Cleanup(ctx, nil, nil); err != nil {
		t.Fatalf("clean up an earlier run: %v", err)
	}
	// After the sandboxes' teardowns (cleanups run last first): what the
	// datapath shares on the host goes with the bridge, and nothing that
	// names the bridge is left for the test runner's sweep.
	t.Cleanup(func() {
		if err := nm.Uninstall(context.Background()); err != nil {
			t.Errorf("uninstall the test's datapath: %v", err)
		}
		_ = exec.Command("ip", "link", "del", e2eBridge).Run()
		if left := testenv.NetworkRulesMentioning(t, e2eBridge); len(left) > 0 {
			t.Errorf("rules naming %s left after the test: %q", e2eBridge, left)
		}
	})

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	route := network.CredentialsRoute{Bridge: e2eBridge, ListenPort: uint16(port), Comment: "berth:iam-e2e:" + e2eBridge}
	if err := route.Install(ctx); err != nil {
		t.Fatalf("install credentials route: %v", err)
	}
	t.Cleanup(func() {
		if err := route.Remove(context.Background()); err != nil {
			t.Errorf("remove credentials route: %v", err)
		}
	})

	tasks := &sandboxTasks{addrs: map[string]netip.Addr{}}
	sandboxes := map[string]*network.Sandbox{}
	for _, task := range []string{e2eTaskA, e2eTaskB} {
		sb, err := nm.Setup(ctx, network.SetupRequest{Owner: task})
		if err != nil {
			t.Fatalf("sandbox for %s: %v", task, err)
		}
		t.Cleanup(func() { _ = nm.Teardown(context.Background(), *sb) })
		sandboxes[task] = sb
		tasks.addrs[task] = netip.MustParseAddr(sb.IP)
	}

	credsA := iam.Credentials{ID: "e2e-id-task-a", RoleArn: "arn:aws:iam::123456789012:role/a", AccessKeyID: "ASIATASKAROLE",
		SecretAccessKey: "secret-a-never-logged", SessionToken: "token-a-never-logged", Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		RoleType: api.RoleTypeTaskApplication}
	credsB := credsA
	credsB.ID, credsB.AccessKeyID, credsB.RoleArn = "e2e-id-task-b", "ASIATASKBROLE", "arn:aws:iam::123456789012:role/b"
	store := iam.NewStore()
	store.Set(e2eTaskA, credsA)
	store.Set(e2eTaskB, credsB)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	audit, err := iam.OpenAuditLog(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	meta := staticMetadata{}
	for task, id := range map[string]string{e2eTaskA: "meta-a", e2eTaskB: "meta-b"} {
		meta[id] = iam.TaskMetadata{Cluster: "e2e", TaskARN: task, Family: "probe", Revision: "1", KnownStatus: "RUNNING",
			Containers: []iam.ContainerMetadata{{DockerID: "docker-" + id, Name: "probe", Type: "NORMAL",
				Networks: []iam.Network{{NetworkMode: "bridge", IPv4Addresses: []string{sandboxes[task].IP}}}}}}
	}
	stop := serveOn(t, addr, iam.Options{Store: store, Tasks: tasks, Metadata: meta, Audit: audit, RateLimit: iam.RateLimit{RPS: 40, Burst: 60}})

	cd := testenv.Containerd(t)
	rdir := t.TempDir()
	resolv := filepath.Join(rdir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(ctx, runtime.Options{
		Address: cd.Address, Namespace: cd.Namespace(t), Snapshotter: cd.Snapshotter, ConnectTimeout: 30 * time.Second,
		StateDir: filepath.Join(rdir, "state"), HostResolvConf: resolv, SystemdResolvConf: filepath.Join(rdir, "absent"),
		Registry: runtime.RegistryOptions{HostsDir: filepath.Join(rdir, "certs.d")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.Pull(ctx, img.Ref); err != nil {
		t.Fatal(err)
	}

	n := 0
	// run starts the probe in task's sandbox with env and returns what it wrote.
	run := func(task string, env ...string) string {
		t.Helper()
		n++
		id := fmt.Sprintf("iam-e2e-%d", n)
		out := t.TempDir()
		err := rt.Create(ctx, container.Spec{
			ID: id, Image: img.Ref, NetNSPath: sandboxes[task].NetnsPath,
			Env:    append([]string{"PROBE_OUT=/out/result", "AWS_EC2_METADATA_DISABLED=true"}, env...),
			Mounts: []container.Mount{{Source: out, Destination: "/out"}},
		})
		if err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		defer func() {
			if err := rt.Remove(ctx, id); err != nil {
				t.Errorf("remove %s: %v", id, err)
			}
		}()
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if st, err := rt.Wait(wctx, id); err != nil {
			t.Fatalf("probe %s did not finish: %v", id, err)
		} else if st.Code != 0 {
			t.Fatalf("probe %s exited %d", id, st.Code)
		}
		b, err := os.ReadFile(filepath.Join(out, "result"))
		if err != nil {
			t.Fatalf("probe %s wrote nothing: %v", id, err)
		}
		return string(b)
	}
	uri := func(id string) string { return iam.EndpointBase + iam.CredentialsRelativeURI(id) }

	// The SDK's default chain, with only the environment the agent injects.
	if got := run(e2eTaskA, iam.ContainerEnv(credsA.ID, "")...); !strings.HasPrefix(got, "KEY ASIATASKAROLE ") {
		t.Fatalf("task A through the SDK chain: want its role's key, got %q", got)
	}
	if got := run(e2eTaskB, iam.ContainerEnv(credsB.ID, "")...); !strings.HasPrefix(got, "KEY ASIATASKBROLE ") {
		t.Fatalf("task B through the SDK chain: want its role's key, got %q", got)
	}
	wrong := `400 {"code":"InvalidIdInRequest","message":"CredentialsV2Request: Credentials not found"}`
	if got := run(e2eTaskA, "PROBE_URL="+uri("not-an-id")); got != wrong {
		t.Fatalf("wrong id: want %q, got %q", wrong, got)
	}
	if got := run(e2eTaskB, "PROBE_URL="+uri(credsA.ID)); got != wrong {
		t.Fatalf("task B with task A's id: want it refused as %q, got %q", wrong, got)
	}

	// Task metadata v4 through the variable the agent injects.
	metaEnv := iam.ContainerEnv("", "meta-a")
	v4 := strings.TrimPrefix(metaEnv[0], iam.EnvMetadataURIV4+"=")
	if got := run(e2eTaskA, "PROBE_URL="+v4+"/task"); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"TaskARN":"`+e2eTaskA+`"`) {
		t.Fatalf("metadata v4 /task from its own task: got %q", got)
	}
	if got := run(e2eTaskA, "PROBE_URL="+iam.EndpointBase+"/v4/not-an-id"); !strings.HasPrefix(got, "404 ") {
		t.Fatalf("metadata v4 with an unknown id: want 404, got %q", got)
	}
	if got := run(e2eTaskB, "PROBE_URL="+v4); !strings.HasPrefix(got, "404 ") {
		t.Fatalf("metadata v4 of task A from task B: want 404, got %q", got)
	}

	// Agent restart: the ids are known again (from state), the secrets are
	// not until ACS resends them.
	stop()
	restarted := iam.NewStore()
	restarted.Expect(e2eTaskA, api.RoleTypeTaskApplication, credsA.ID)
	serveOn(t, addr, iam.Options{Store: restarted, Tasks: tasks, Audit: audit})
	uninit := `503 {"code":"CredentialsUninitialized","message":"CredentialsV2Request: Credentials uninitialized for ID"}`
	if got := run(e2eTaskA, "PROBE_URL="+uri(credsA.ID)); got != uninit {
		t.Fatalf("after a restart: want %q, got %q", uninit, got)
	}
	refreshed := credsA
	refreshed.AccessKeyID = "ASIATASKAREFRESHED"
	restarted.Set(e2eTaskA, refreshed)
	if got := run(e2eTaskA, iam.ContainerEnv(credsA.ID, "")...); !strings.HasPrefix(got, "KEY ASIATASKAREFRESHED ") {
		t.Fatalf("after the resend: want the refreshed key, got %q", got)
	}

	// The agent closes its audit log when it stops; the buffered lines are
	// in the file then.
	if err := audit.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, secret := range []string{credsA.SecretAccessKey, credsA.SessionToken, credsA.ID, credsB.ID} {
		if strings.Contains(log, secret) {
			t.Fatalf("audit log contains %q:\n%s", secret, log)
		}
	}
	ipA, ipB := sandboxes[e2eTaskA].IP, sandboxes[e2eTaskB].IP
	for _, want := range []string{
		" 200 " + ipA + ":", " 200 " + ipB + ":", " 400 " + ipA + ":",
		" 400 " + ipB + ":", e2eTaskA + " " + iam.EventSourceRefused, " 503 " + ipA + ":",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %q:\n%s", want, log)
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
