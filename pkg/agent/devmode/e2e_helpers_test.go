package devmode_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/testenv/agentproc"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/agent/devmode"
	"github.com/berth-dev/berth/pkg/cluster/acs"
	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/state"
)

// childEnv turns the test binary into a child agent (for the SIGKILL test);
// its value is a JSON agentSpec.
const childEnv = "BERTH_E2E_AGENT_CHILD"

// TestMain serves the agent binary's other modes: the shim-started logger
// and a child agent.
func TestMain(m *testing.M) { os.Exit(agentproc.Main(m, childEnv, runChild)) }

const region = "us-east-1"

func logger() *slog.Logger {
	if os.Getenv("BERTH_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// teeLogger logs to w, and to stderr as logger does.
func teeLogger(w io.Writer) *slog.Logger {
	if os.Getenv("BERTH_TEST_VERBOSE") != "" {
		w = io.MultiWriter(w, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// agentSpec is everything one agent needs: its endpoint and key, and its
// private slice of the host.
type agentSpec struct {
	Endpoint, KeyID, Secret     string
	Containerd, Snapshotter, NS string
	DataDir, NetRunDir          string
	Bridge, Subnet, Prefix      string
	PortFirst                   uint16
	// TaskRoles turns task IAM roles on, as dev mode does, with the
	// credentials endpoint on a free loopback port.
	TaskRoles bool
	// Introspection and Credentials, when set, are the listeners'
	// addresses (default: free loopback ports).
	Introspection, Credentials string
	// Datapath, when set, is BERTH_NETWORK_DATAPATH (default: builtin).
	Datapath string
	// MetricsSample and MetricsPublish, when set, shorten the metrics
	// sampling interval (below the 5s config allows) and the TCS
	// publication interval (20s).
	MetricsSample, MetricsPublish time.Duration
}

func (s agentSpec) config() (*config.Config, error) {
	env := []string{
		"ECS_CLUSTER=default",
		"ECS_BACKEND_HOST=" + s.Endpoint,
		"AWS_REGION=" + region,
		"ECS_DATADIR=" + s.DataDir,
		"BERTH_CONTAINERD_ADDRESS=" + s.Containerd,
		"BERTH_CONTAINERD_NAMESPACE=" + s.NS,
		"BERTH_BRIDGE_NAME=" + s.Bridge,
		"BERTH_BRIDGE_SUBNET=" + s.Subnet,
		fmt.Sprintf("ECS_DYNAMIC_HOST_PORT_RANGE=%d-%d", s.PortFirst, s.PortFirst+49),
		"ECS_CONTAINER_STOP_TIMEOUT=2s",
	}
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	cfg, _, err := config.Load(config.LoadOptions{Env: env, ReadFile: noFiles})
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	cfg.Listen.Introspection = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Containers.TaskCleanupWait = time.Hour
	if s.TaskRoles {
		cfg.IAM.EnableTaskRole = true
		cfg.IAM.AuditLogFile = filepath.Join(s.DataDir, "audit.log")
		cfg.Listen.Credentials = netip.MustParseAddrPort("127.0.0.1:0")
	}
	if s.Introspection != "" {
		if cfg.Listen.Introspection, err = netip.ParseAddrPort(s.Introspection); err != nil {
			return nil, err
		}
	}
	if s.Credentials != "" {
		if cfg.Listen.Credentials, err = netip.ParseAddrPort(s.Credentials); err != nil {
			return nil, err
		}
	}
	if s.Datapath != "" {
		cfg.Network.Datapath = s.Datapath
	}
	if s.MetricsSample > 0 {
		cfg.Metrics.PollInterval = s.MetricsSample
	}
	return cfg, nil
}

// options are the agent options that put it in its slice of the host.
func (s agentSpec) options() []agent.Option {
	exe, _ := os.Executable()
	return []agent.Option{agent.WithLoggerBinary(exe), agent.WithNetworkRunDir(s.NetRunDir),
		agent.WithNamePrefix(s.Prefix), agent.WithSnapshotter(s.Snapshotter)}
}

// run runs the agent as a cluster member until ctx ends (or it fails).
func (s agentSpec) run(ctx context.Context, registered func(state.InstanceIdentity), session func(*registration.Session), opts ...agent.Option) error {
	return s.runLogged(ctx, logger(), registered, session, opts...)
}

func (s agentSpec) runLogged(ctx context.Context, log *slog.Logger, registered func(state.InstanceIdentity), session func(*registration.Session), opts ...agent.Option) error {
	cfg, err := s.config()
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, append(append(s.options(), agent.WithLogger(log), agent.WithMembership(agent.Membership{
		Credentials:      credentials.NewStaticCredentialsProvider(s.KeyID, s.Secret, ""),
		HeartbeatTimeout: time.Minute, SubmitPoll: 50 * time.Millisecond,
		ReconnectBackoff: registration.Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2},
		Registered:       registered, Session: session, MetricsInterval: s.MetricsPublish,
	})), opts...)...)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func runChild(raw string) int {
	var s agentSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	err := s.run(ctx, func(id state.InstanceIdentity) { fmt.Println("REGISTERED " + id.ContainerInstanceArn) }, nil)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "child agent:", err)
		return 1
	}
	return 0
}

// submission is one state change the endpoint received.
type submission struct {
	Task, Container, Status string
}

// recorder wraps the endpoint's handler and records every state change
// submission that it accepted (answered 200).
type recorder struct {
	mu   sync.Mutex
	subs []submission
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

func (r *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target := req.Header.Get("X-Amz-Target")
		if !strings.HasSuffix(target, "StateChange") {
			next.ServeHTTP(w, req)
			return
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, code: 200}
		next.ServeHTTP(sw, req)
		if sw.code != 200 {
			return
		}
		var in struct {
			Task, ContainerName, Status string
		}
		_ = json.Unmarshal(body, &in)
		r.mu.Lock()
		r.subs = append(r.subs, submission{Task: in.Task, Container: in.ContainerName, Status: in.Status})
		r.mu.Unlock()
	})
}

// of returns the accepted submissions about one task, in arrival order.
func (r *recorder) of(task string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.subs {
		if s.Task == task {
			if s.Container != "" {
				out = append(out, s.Container+":"+s.Status)
			} else {
				out = append(out, "task:"+s.Status)
			}
		}
	}
	return out
}

// e2e is a real endpoint (restartable on its port and data), an admin
// client, an agent key, containerd and a registry with the web image.
type e2e struct {
	t *testing.T
	// tune, when set, changes the endpoint's options at each start.
	tune    func(*devmode.EndpointOptions)
	rec     *recorder
	acsOpts acs.Options
	dataDir string
	ep      *devmode.Endpoint
	admin   *ecs.Client
	keyID   string
	secret  string
	cd      *testenv.ContainerdInstance
	image   string
}

func newE2E(t *testing.T, ao acs.Options) *e2e {
	t.Helper()
	return newE2ETuned(t, ao, nil)
}

// newE2ETuned is newE2E with the endpoint's options changed by tune.
func newE2ETuned(t *testing.T, ao acs.Options, tune func(*devmode.EndpointOptions)) *e2e {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "iptables", "ip")
	e := &e2e{t: t, rec: &recorder{}, acsOpts: ao, dataDir: t.TempDir(), cd: testenv.Containerd(t), tune: tune}
	reg := testenv.Registry(t)
	img := testenv.BuildImage(t, reg, "e2e/web", testenv.ImageSpec{
		Files: []testenv.File{{Path: "/srv/index.html", Mode: 0o644, Data: []byte("hello from berth\n")},
			// A request that takes a second: in flight while tasks stop.
			// It answers "slow " and the page (lb tests: the task's id).
			{Path: "/srv/cgi-bin/slow", Mode: 0o755, Data: []byte("#!/bin/sh\nsleep 1\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow %s\\n' \"$(cat /srv/index.html)\"\n")}},
		Cmd: []string{"/bin/httpd", "-f", "-v", "-p", "80", "-h", "/srv"},
	})
	e.image = img.Ref
	e.startEndpoint("127.0.0.1:0")
	id, secret, err := e.ep.Keys.Create(auth.RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.admin = devmode.NewECSClient(e.ep.URL, region, aws.Credentials{AccessKeyID: id, SecretAccessKey: secret})
	e.keyID, e.secret, err = e.ep.Keys.Create(auth.RoleAgent, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateCluster(context.Background(), &ecs.CreateClusterInput{ClusterName: aws.String("default")}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *e2e) startEndpoint(addr string) {
	e.t.Helper()
	o := devmode.EndpointOptions{DataDir: e.dataDir, Listen: addr, Region: region,
		AccountID: devmode.DefaultAccount, ACS: e.acsOpts, Wrap: e.rec.wrap, Logger: logger()}
	if e.tune != nil {
		e.tune(&o)
	}
	ep, err := devmode.StartEndpoint(context.Background(), o)
	if err != nil {
		e.t.Fatalf("start endpoint: %v", err)
	}
	e.ep = ep
	e.t.Cleanup(func() { ep.Close() })
	if e.admin != nil {
		// Same address, same keys: the admin client keeps working.
		return
	}
}

// spec gives an agent its own namespace, data dir, bridge, subnet and ports.
func (e *e2e) spec() agentSpec {
	t := e.t
	id := randomHex(3)
	s := agentSpec{
		Endpoint: e.ep.URL, KeyID: e.keyID, Secret: e.secret,
		Containerd: e.cd.Address, Snapshotter: e.cd.Snapshotter, NS: e.cd.Namespace(t),
		DataDir: t.TempDir(), NetRunDir: t.TempDir(),
		Bridge: "be" + id, Subnet: fmt.Sprintf("10.%d.%d.0/24", 100+mrand.IntN(50), mrand.IntN(256)),
		Prefix: "be" + id + "-", PortFirst: uint16(20000 + mrand.IntN(160)*50),
	}
	agentproc.SweepNetwork(t, agentproc.AgentNetwork{DataDir: s.DataDir, RunDir: s.NetRunDir, Prefix: s.Prefix, Bridge: s.Bridge, Subnet: s.Subnet}) // what a failed test left
	return s
}

// runAgent runs an agent in this process; stop ends it (also at cleanup,
// after the test's tasks were stopped through the API).
func (e *e2e) runAgent(s agentSpec) (arn string, sess func() *registration.Session, stop func()) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ids := make(chan string, 1)
	var mu sync.Mutex
	var session *registration.Session
	done := make(chan error, 1)
	go func() {
		done <- s.run(ctx, func(id state.InstanceIdentity) { ids <- id.ContainerInstanceArn },
			func(x *registration.Session) { mu.Lock(); session = x; mu.Unlock() })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	e.stopTasksAtCleanup()
	select {
	case arn = <-ids:
	case err := <-done:
		t.Fatalf("agent stopped before registering: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not register within 60s")
	}
	e.waitConnected(arn)
	return arn, func() *registration.Session { mu.Lock(); defer mu.Unlock(); return session }, stop
}

// waitConnected waits until DescribeContainerInstances shows the agent
// connected: only then does RunTask place tasks on it.
func (e *e2e) waitConnected(arn string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := e.admin.DescribeContainerInstances(context.Background(), &ecs.DescribeContainerInstancesInput{
			Cluster: aws.String("default"), ContainerInstances: []string{arn}})
		if err == nil && len(out.ContainerInstances) == 1 && out.ContainerInstances[0].AgentConnected {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("agent of %s not connected after 30s (%v)", arn, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopTasksAtCleanup stops every task still running through the API while
// the agents still run, so that their networks are torn down properly.
func (e *e2e) stopTasksAtCleanup() {
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		list, err := e.admin.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("default")})
		if err != nil {
			return
		}
		for _, arn := range list.TaskArns {
			_, _ = e.admin.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("default"), Task: aws.String(arn)})
		}
		for _, arn := range list.TaskArns {
			for ctx.Err() == nil {
				if t, err := e.describe(ctx, arn); err == nil && aws.ToString(t.LastStatus) == "STOPPED" {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	})
}

func (e *e2e) describe(ctx context.Context, arn string) (types.Task, error) {
	out, err := e.admin.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("default"), Tasks: []string{arn}})
	if err != nil {
		return types.Task{}, err
	}
	if len(out.Tasks) != 1 {
		return types.Task{}, fmt.Errorf("task %s not found", arn)
	}
	return out.Tasks[0], nil
}

// waitStatus polls DescribeTasks until the task's lastStatus is want.
func (e *e2e) waitStatus(arn, want string, d time.Duration) types.Task {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var last types.Task
	for {
		t, err := e.describe(ctx, arn)
		if err == nil {
			last = t
			if aws.ToString(t.LastStatus) == want {
				return t
			}
			if aws.ToString(t.LastStatus) == "STOPPED" {
				e.t.Fatalf("task %s stopped (%q), want %s", arn, aws.ToString(t.StoppedReason), want)
			}
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("task %s: lastStatus %s (stoppedReason %q) after %v, want %s", arn, aws.ToString(last.LastStatus), aws.ToString(last.StoppedReason), d, want)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// taskDef registers the web task definition; hostPort 0 unless given.
func (e *e2e) taskDef(family string, hostPort int32, command ...string) string {
	e.t.Helper()
	cd := types.ContainerDefinition{
		Name: aws.String("web"), Image: aws.String(e.image), Memory: aws.Int32(32), Essential: aws.Bool(true),
		PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(hostPort), Protocol: types.TransportProtocolTcp}},
	}
	if len(command) > 0 {
		cd.Command = command
	}
	out, err := e.admin.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), ContainerDefinitions: []types.ContainerDefinition{cd}})
	if err != nil {
		e.t.Fatalf("RegisterTaskDefinition: %v", err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

func (e *e2e) runTasks(td string, n int) []string {
	e.t.Helper()
	out, err := e.admin.RunTask(context.Background(), &ecs.RunTaskInput{Cluster: aws.String("default"),
		TaskDefinition: aws.String(td), Count: aws.Int32(int32(n))})
	if err != nil || len(out.Tasks) != n {
		e.t.Fatalf("RunTask: %v (%+v)", err, out)
	}
	var arns []string
	for _, t := range out.Tasks {
		arns = append(arns, aws.ToString(t.TaskArn))
	}
	return arns
}

// get fetches http://127.0.0.1:port/ and returns the body.

// startChild runs an agent in its own process and returns it once it has
// registered and connected, with its container instance ARN.
func (e *e2e) startChild(s agentSpec) (*agentproc.Child, string) {
	t := e.t
	t.Helper()
	c := agentproc.Start(t, childEnv, s)
	e.stopTasksAtCleanup()
	select {
	case line, ok := <-c.Lines:
		if !ok || !strings.HasPrefix(line, "REGISTERED ") {
			t.Fatalf("child agent did not register (%q):\n%s", line, c.Log())
		}
		arn := strings.TrimPrefix(line, "REGISTERED ")
		e.waitConnected(arn)
		return c, arn
	case <-time.After(60 * time.Second):
		t.Fatal("child agent did not register within 60s")
	}
	return nil, ""
}

func namespaced(t *testing.T, ns string) context.Context { return testenv.Context(t, ns) }
