package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
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
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
)

// TestMain serves the modes the agent binary has besides the tests: the
// shim-spawned logger (the runtime points the shim at this executable) and
// a child agent for the kill -9 tests.
func TestMain(m *testing.M) { os.Exit(agentproc.Main(m, childEnv, runChild)) }

// initBinary is a tini-compatible init ("init -- cmd args").
func initBinary(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"docker-init", "tini-static", "tini"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testenv.InCI() {
		t.Fatal("no init binary (docker-init or tini) on PATH; install the tini package")
	}
	t.Skip("no init binary (docker-init or tini) on PATH; install it with `apt-get install tini`")
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hostEnv is one agent's private slice of the host: its containerd
// namespace, data directory, bridge, subnet, name prefix and port range.
type hostEnv struct {
	Containerd  string `json:"containerd"`
	Snapshotter string `json:"snapshotter"`
	Namespace   string `json:"namespace"`
	Registry    string `json:"registry"`
	DataDir     string `json:"dataDir"`
	NetRunDir   string `json:"netRunDir"`
	Bridge      string `json:"bridge"`
	Subnet      string `json:"subnet"`
	Prefix      string `json:"prefix"`
	PortFirst   uint16 `json:"portFirst"`
	InitBinary  string `json:"initBinary"`
	// AWSLogsEndpoint is this test's CloudWatch Logs store on loopback
	// (BERTH_AWSLOGS_ENDPOINT), so awslogs containers never reach AWS.
	AWSLogsEndpoint string `json:"awslogsEndpoint"`
}

// newHostEnv gives an agent its own slice of the host; adjust changes it
// before anything is registered with it (e.g. to share names with another
// agent).
func newHostEnv(t *testing.T, adjust ...func(*hostEnv)) *hostEnv {
	t.Helper()
	testenv.RequireBinaries(t, "iptables", "ip")
	cd := testenv.Containerd(t)
	reg := testenv.Registry(t)
	id := randomHex(3)
	first := uint16(42000 + mrand.IntN(200)*100)
	h := &hostEnv{
		Containerd:  cd.Address,
		Snapshotter: cd.Snapshotter,
		Namespace:   cd.Namespace(t),
		Registry:    reg.Host,
		DataDir:     t.TempDir(),
		NetRunDir:   t.TempDir(),
		Bridge:      "bt" + id,
		Subnet:      fmt.Sprintf("10.%d.%d.0/24", 160+mrand.IntN(60), mrand.IntN(256)),
		Prefix:      "bt" + id + "-",
		PortFirst:   first,
		InitBinary:  initBinary(t),
	}
	h.AWSLogsEndpoint = startLogStore(t).url()
	for _, f := range adjust {
		f(h)
	}
	// Sandboxes are only left when a test failed with tasks running (the
	// assertions have reported them); no netns, rule or lease outlives it.
	agentproc.SweepNetwork(t, agentproc.AgentNetwork{DataDir: h.DataDir, RunDir: h.NetRunDir, Prefix: h.Prefix, Bridge: h.Bridge, Subnet: h.Subnet})
	return h
}

// config builds the agent's configuration the way cmd/agent does (through
// config.Load), then shortens what the tests cannot wait for.
func (h *hostEnv) config(t testing.TB) *config.Config {
	cfg, err := h.loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (h *hostEnv) loadConfig() (*config.Config, error) {
	env := []string{
		"ECS_CLUSTER=lab",
		"ECS_DATADIR=" + h.DataDir,
		"BERTH_CONTAINERD_ADDRESS=" + h.Containerd,
		"BERTH_CONTAINERD_NAMESPACE=" + h.Namespace,
		"BERTH_BRIDGE_NAME=" + h.Bridge,
		"BERTH_BRIDGE_SUBNET=" + h.Subnet,
		fmt.Sprintf("ECS_DYNAMIC_HOST_PORT_RANGE=%d-%d", h.PortFirst, h.PortFirst+99),
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
		`ECS_AVAILABLE_LOGGING_DRIVERS=["json-file","none","awslogs","syslog"]`,
		"BERTH_AWSLOGS_ENDPOINT=" + h.AWSLogsEndpoint,
		// The log store's agent key; static keys keep the SDK from
		// looking for credentials anywhere else (e.g. instance metadata).
		"AWS_ACCESS_KEY_ID=" + lsKeyID,
		"AWS_SECRET_ACCESS_KEY=" + lsSecret,
		"AWS_REGION=" + lsRegion,
	}
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	cfg, _, err := config.Load(config.LoadOptions{Env: env, ReadFile: noFiles})
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	// Values below the configurable minimums, for tests only.
	cfg.Listen.Introspection = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Containers.TaskCleanupWait = time.Hour
	return cfg, nil
}

func (h *hostEnv) options(extra ...agent.Option) []agent.Option {
	exe, _ := os.Executable()
	return append([]agent.Option{
		agent.WithLoggerBinary(exe),
		agent.WithInitBinary(h.InitBinary),
		agent.WithNetworkRunDir(h.NetRunDir),
		agent.WithNamePrefix(h.Prefix),
		agent.WithSnapshotter(h.Snapshotter),
	}, extra...)
}

// runAgent runs an agent in this process until the test ends.
func (h *hostEnv) runAgent(t *testing.T, cfg *config.Config, opts ...agent.Option) *agent.Agent {
	t.Helper()
	a, _ := h.startAgent(t, cfg, opts...)
	return a
}

// startAgent runs an agent in this process; stop ends it (and runs at the
// end of the test if not called before).
func (h *hostEnv) startAgent(t *testing.T, cfg *config.Config, opts ...agent.Option) (a *agent.Agent, stop func()) {
	t.Helper()
	a, err := agent.New(cfg, h.options(opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	if err := a.Ready(rctx); err != nil {
		select {
		case err := <-done:
			t.Fatalf("agent ended before it was ready: %v", err)
		default:
		}
		t.Fatalf("agent not ready: %v", err)
	}
	return a, stop
}

// fixture decodes a shared protocol fixture with its images pointed at the
// test registry.
func (h *hostEnv) fixture(t testing.TB, name string) *api.PayloadMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "api", "testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.ReplaceAll(string(b), "registry.internal:5000", h.Registry))
	f, err := api.DecodeFrame(b)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	p, ok := f.(*api.PayloadMessage)
	if !ok {
		t.Fatalf("%s is a %T, want a PayloadMessage", name, f)
	}
	return p
}

// waitTask polls the agent until cond holds for the task.
func waitTask(t testing.TB, a *agent.Agent, arn, what string, timeout time.Duration, cond func(engine.TaskState) bool) engine.TaskState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last engine.TaskState
	for time.Now().Before(deadline) {
		if st, ok := a.Task(arn); ok {
			last = st
			if cond(st) {
				return st
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task %s did not reach %s within %s; last: %s", arn, what, timeout, describe(last))
	return last
}

func describe(st engine.TaskState) string {
	var parts []string
	for _, c := range st.Containers {
		parts = append(parts, fmt.Sprintf("%s=%s/%s exit=%v reason=%q", c.Name, c.KnownStatus, c.Health, exitOf(c), c.Reason))
	}
	return fmt.Sprintf("known=%s desired=%s reason=%q [%s]", st.KnownStatus, st.DesiredStatus, st.StoppedReason, strings.Join(parts, "; "))
}

func exitOf(c *engine.ContainerState) any {
	if c.ExitCode == nil {
		return nil
	}
	return *c.ExitCode
}

func container(st engine.TaskState, name string) *engine.ContainerState {
	for _, c := range st.Containers {
		if c.Name == name {
			return c
		}
	}
	return &engine.ContainerState{}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// containerLog follows a container's captured log file.
type containerLog struct {
	t    *testing.T
	path string
	off  int
}

// wait returns once what appears after the offset, and moves the offset
// past it.
func (l *containerLog) wait(what string, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(l.path)
		if i := strings.Index(string(b[min(l.off, len(b)):]), what); i >= 0 {
			l.off += i + len(what)
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("container log lacks %q after offset %d:\n%s", what, l.off, b[max(0, len(b)-2000):])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// skipToEnd moves the offset to the current end of the log.
func (l *containerLog) skipToEnd() {
	b, _ := os.ReadFile(l.path)
	l.off = len(b)
}

// withTaskRoles turns task roles on in cfg, the credentials endpoint on a
// free loopback port and its audit log in a temporary directory.
func withTaskRoles(t *testing.T, cfg *config.Config) {
	t.Helper()
	cfg.IAM.EnableTaskRole = true
	cfg.IAM.AuditLogFile = filepath.Join(t.TempDir(), "audit.log")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen.Credentials = netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
}
