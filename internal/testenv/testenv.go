package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/sasha-s/go-deadlock"
)

// processState is the test process's lazily started Env and image cache. It
// is the one package-level variable here: the contract (Containerd(t),
// Registry(t), BuildImage) has no handle to carry it, and Main must find it
// to tear it down.
type processState struct {
	mainCalled atomic.Bool
	busybox    baseCache

	mu  sync.Mutex // guards env and err
	env *Env
	err error
}

var process processState

// lazyEnv returns the process's Env, creating its directory on first use.
func (p *processState) lazyEnv() (*Env, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.env == nil && p.err == nil {
		p.env, p.err = newEnv("", "")
	}
	return p.env, p.err
}

// close tears down what this process started, if anything.
func (p *processState) close(ctx context.Context) error {
	p.mu.Lock()
	env := p.env
	p.mu.Unlock()
	if env == nil {
		return nil
	}
	return env.Close(ctx)
}

// closeOnSignal tears down what this process started when SIGINT or
// SIGTERM arrives during the run (Ctrl-C on `go test`), then exits 128+N
// as the default action would have. The returned function stops watching
// and waits for the watcher to end.
func (p *processState) closeOnSignal() (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case sig := <-sigs:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.close(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "testenv: teardown after %v failed: %v\n", sig, err)
			}
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		<-finished
	}
}

// Main runs the tests and then tears down every daemon this process started
// (containerd with all its containers, registries, mounts, files). A package
// that uses testenv calls it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// A failed teardown turns a passing run into exit code 1.
func Main(m *testing.M) int {
	// Under -race, go-cni guards its config with go-deadlock's RWMutex,
	// whose goroutine-id lookup returns 0 for every goroutine on this Go
	// version, so two concurrent (and legal) RLocks in CNI Setup — several
	// agents in one test process, or one agent setting up tasks in
	// parallel — are taken for a recursive lock and the process exits.
	// Keep the mutex, drop the detector; set before any test goroutine runs.
	deadlock.Opts.Disable = true
	process.mainCalled.Store(true)
	stopWatch := process.closeOnSignal()
	code := m.Run()
	stopWatch()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := process.close(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: teardown failed: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// requireMain fails a test whose package would start daemons without a
// TestMain that stops them again.
func requireMain(t testing.TB) {
	t.Helper()
	if !process.mainCalled.Load() {
		t.Fatal("testenv: this package needs `func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }` so that what testenv starts is torn down")
	}
}

// skipShort skips integration tests under `go test -short` (make unit),
// which asks for tests that need no daemon.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: integration test skipped with -short")
	}
}

// ContainerdInstance is a running private containerd.
type ContainerdInstance struct {
	// Address is the unix socket path of its gRPC API.
	Address string
	// Snapshotter is the snapshotter that works on this host ("overlayfs" or
	// "native"). Namespaces from Namespace default to it.
	Snapshotter string
}

// Containerd returns the shared private containerd, starting one in this
// process if BERTHTEST_CONTAINERD_ADDRESS is not set. It needs root, runc
// and containerd-shim-runc-v2 (and containerd itself when starting one).
func Containerd(t testing.TB) *ContainerdInstance {
	t.Helper()
	skipShort(t)
	RequireRoot(t)
	RequireBinaries(t, "runc", "containerd-shim-runc-v2")
	requireMain(t)
	if addr := os.Getenv(EnvContainerdAddress); addr != "" {
		snap := os.Getenv(EnvSnapshotter)
		if snap == "" {
			snap = SnapshotterNative
		}
		return &ContainerdInstance{Address: addr, Snapshotter: snap}
	}
	RequireBinaries(t, "containerd")
	env, err := process.lazyEnv()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	srv, err := env.containerd(t.Context())
	if err != nil {
		t.Fatalf("testenv: start containerd: %v", err)
	}
	return &ContainerdInstance{Address: srv.address, Snapshotter: srv.snapshotter}
}

// Client returns a new client of c, closed at the end of the test. It has no
// default namespace: use namespaces.WithNamespace(ctx, c.Namespace(t)).
func (c *ContainerdInstance) Client(t testing.TB) *containerd.Client {
	t.Helper()
	cli, err := containerd.New(c.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("testenv: connect to containerd %s: %v", c.Address, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// namespaceChars matches what containerd refuses in a namespace name.
var namespaceChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Namespace creates a fresh containerd namespace for this test, labelled
// with c.Snapshotter as its default snapshotter. At the end of the test
// everything in it is deleted: tasks are killed and deleted, containers are
// deleted with their snapshots, leases and images are deleted (their content
// goes with garbage collection), and then the namespace. A failure to empty
// it fails the test, since it means the code under test leaked something.
func (c *ContainerdInstance) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(namespaceChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	ns := "t-" + base + "-" + randomHex(4)
	cli, err := containerd.New(c.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("testenv: connect to containerd %s: %v", c.Address, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The create event is published in the new namespace, so ctx carries it.
	if err := cli.NamespaceService().Create(namespaces.WithNamespace(ctx, ns), ns, map[string]string{snapshotterLabel: c.Snapshotter}); err != nil {
		cli.Close()
		t.Fatalf("testenv: create containerd namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		defer cli.Close()
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := emptyNamespace(ctx, cli, ns); err != nil {
			t.Errorf("testenv: clean containerd namespace %s: %v", ns, err)
		}
		// runc leaves the namespace's state directory and parent cgroups
		// on the host; the name is this test's own, so they go too.
		if err := removeNamespaceDirs(ns); err != nil {
			t.Errorf("testenv: clean host directories of namespace %s: %v", ns, err)
		}
	})
	return ns
}

// Context returns a context in namespace ns that ends with the test.
func Context(t testing.TB, ns string) context.Context {
	return namespaces.WithNamespace(t.Context(), ns)
}

// Registry returns the shared plain-HTTP loopback registry, starting one in
// this process if BERTHTEST_REGISTRY is not set.
func Registry(t testing.TB) *RegistryInstance {
	t.Helper()
	return registryFor(t, false)
}

// AuthRegistry returns the shared registry with htpasswd basic auth,
// starting one in this process if BERTHTEST_AUTH_REGISTRY is not set.
func AuthRegistry(t testing.TB) *RegistryInstance {
	t.Helper()
	return registryFor(t, true)
}

func registryFor(t testing.TB, auth bool) *RegistryInstance {
	t.Helper()
	skipShort(t)
	requireMain(t)
	if auth {
		if host := os.Getenv(EnvAuthRegistry); host != "" {
			return &RegistryInstance{Host: host, Username: os.Getenv(EnvAuthUser), Password: os.Getenv(EnvAuthPassword)}
		}
	} else if host := os.Getenv(EnvRegistry); host != "" {
		return &RegistryInstance{Host: host}
	}
	RequireBinaries(t, "docker-registry")
	env, err := process.lazyEnv()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	srv, err := env.registry(t.Context(), auth)
	if err != nil {
		t.Fatalf("testenv: start registry: %v", err)
	}
	r := srv.reg
	return &r
}
