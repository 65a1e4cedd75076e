// Package agent wires one Berth agent together from a config.Config: the
// state database (pkg/state), containerd (pkg/runtime), task networking
// (pkg/network), container logs (pkg/logs) and their shipping to log
// drivers (pkg/logship), the task engine (pkg/engine), the introspection
// API (pkg/introspection), task IAM roles and metadata (pkg/iam, fed and
// served from iam*.go) and, with WithMembership, the cluster membership
// (pkg/registration: registration, the ACS and TCS sessions and the state
// change submitter, membership.go). Run runs it until its context ends or
// one of its components fails; HandlePayload is how ACS payloads (or tests)
// hand it tasks.
//
// cmd/agent, dev mode (pkg/agent/devmode), the benchmarks and integration
// tests import it. It maps the config onto each package's own options and
// holds no protocol or runtime logic.
package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/introspection"
	"github.com/berth-dev/berth/pkg/logship"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/state"
	"github.com/berth-dev/berth/pkg/stats"
)

// Option adjusts how New wires the agent beyond what the config says.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	loggerBinary string
	initBinary   string
	netRunDir    string
	namePrefix   string
	instanceARN  string
	snapshotter  string
	stepHook     func(ctx context.Context, step engine.Step)
	afterRecover func(ctx context.Context) error
	onChange     func()
	// uninstallNetwork: WithNetworkUninstallOnStop.
	uninstallNetwork bool
	// awsCredentials sign awslogs requests; nil means the agent's own.
	awsCredentials aws.CredentialsProvider
	// membership: WithMembership (membership.go); nil runs no membership.
	membership *Membership
}

// WithStateChangeHook is called (without locks held) each time state
// changes were written to the outbox, so a submitter can send them at once
// instead of on its next poll.
func WithStateChangeHook(hook func()) Option { return func(o *options) { o.onChange = hook } }

// WithAWSCredentials sets the credentials the awslogs driver signs with
// when a task has no execution role (default: the config's static keys,
// else the AWS SDK's standard chain).
func WithAWSCredentials(p aws.CredentialsProvider) Option {
	return func(o *options) { o.awsCredentials = p }
}

// WithSnapshotter picks containerd's snapshotter (default overlayfs).
func WithSnapshotter(name string) Option { return func(o *options) { o.snapshotter = name } }

// WithStepHook is a test seam: hook runs around every side-effecting step
// of the engine (see engine.Options.StepHook).
func WithStepHook(hook func(ctx context.Context, step engine.Step)) Option {
	return func(o *options) { o.stepHook = hook }
}

// WithAfterRecoverHook is a test seam: hook runs at the end of the
// engine's recovery, after the network clean-up, and an error it returns
// fails the recovery as a clean-up failure does (the agent then stops).
func WithAfterRecoverHook(hook func(ctx context.Context) error) Option {
	return func(o *options) { o.afterRecover = hook }
}

// WithLogger sets the agent's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithLoggerBinary is the program run as the log daemon that captures
// container output, "<binary> log-daemon ..." (default: this executable,
// which must serve logs.ServeMode's modes).
func WithLoggerBinary(path string) Option { return func(o *options) { o.loggerBinary = path } }

// WithInitBinary is the init process run as PID 1 for containers with
// initProcessEnabled (it is called as "init -- cmd args", like Docker's
// docker-init and tini). Without this option the first of docker-init,
// tini-static and tini found on PATH is used; with none, such containers
// are refused with a reason saying so.
func WithInitBinary(path string) Option { return func(o *options) { o.initBinary = path } }

// WithNetworkRunDir puts the CNI config, IPAM leases and sandbox records
// under dir instead of /run/berth (tests give every agent its own).
func WithNetworkRunDir(dir string) Option { return func(o *options) { o.netRunDir = dir } }

// WithNamePrefix starts every sandbox and netns name with prefix (default
// network.DefaultNamePrefix); the agent's owner tag follows it, and
// start-up clean-up only touches names with both.
func WithNamePrefix(prefix string) Option { return func(o *options) { o.namePrefix = prefix } }

// WithContainerInstanceARN sets the ARN reported by /v1/metadata until
// registration stores one.
func WithContainerInstanceARN(arn string) Option { return func(o *options) { o.instanceARN = arn } }

// Agent is one Berth agent. Create it with New and call Run once.
type Agent struct {
	cfg *config.Config
	o   options
	log *slog.Logger

	started chan struct{} // closed once Run has built the engine
	ended   chan struct{} // closed once Run has returned
	// stateChanged wakes the state change submitter (membership.go) each
	// time the engine wrote state changes; nil without membership.
	stateChanged chan struct{}

	// mu guards the fields below, set by Run.
	mu     sync.Mutex
	eng    *engine.Engine
	db     *state.DB
	listen net.Addr
	roles  *taskRoles // nil unless ECS_ENABLE_TASK_IAM_ROLE
	// sampler is nil with ECS_DISABLE_METRICS=true (metrics.go).
	sampler *stats.Sampler
	runErr  error // what Run returned, once ended is closed
}

// ErrStopped is returned (wrapping why) by methods that wait for a running
// agent once Run has returned.
var ErrStopped = errors.New("agent stopped")

// New checks the config and returns an agent that does nothing until Run.
func New(cfg *config.Config, opts ...Option) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("agent: nil config")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("agent: ECS_DATADIR is empty")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.loggerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("agent: find own executable for the logger: %w", err)
		}
		o.loggerBinary = exe
	}
	if o.initBinary == "" {
		for _, name := range []string{"docker-init", "tini-static", "tini"} {
			if p, err := exec.LookPath(name); err == nil {
				o.initBinary = p
				break
			}
		}
	}
	a := &Agent{cfg: cfg, o: o, log: o.logger, started: make(chan struct{}), ended: make(chan struct{})}
	if o.membership != nil {
		a.stateChanged = make(chan struct{}, 1)
		hook := o.onChange
		a.o.onChange = func() {
			select {
			case a.stateChanged <- struct{}{}:
			default:
			}
			if hook != nil {
				hook()
			}
		}
	}
	return a, nil
}

// Run opens the state, connects to containerd, recovers tasks, serves the
// introspection API and runs tasks until ctx ends (returning nil) or one
// of its components fails: the engine (its recovery, for instance), the
// introspection API or, with task roles on, the credentials endpoint; with
// WithMembership it also registers the instance and runs the sessions with
// the endpoint and the state change submitter (membership.go). Then the
// others are stopped, the failure is logged and Run returns it once every
// goroutine of the agent has ended. Containers keep running when Run
// returns; the next Run re-attaches to them. Call Run once.
func (a *Agent) Run(ctx context.Context) error {
	if a.o.membership != nil {
		return a.runMember(ctx, *a.o.membership)
	}
	return a.runNode(ctx)
}

// runNode is Run without the membership: it owns the state database, the
// runtime, the network and the engine.
func (a *Agent) runNode(ctx context.Context) (err error) {
	defer func() {
		a.mu.Lock()
		a.runErr = err
		a.mu.Unlock()
		close(a.ended)
	}()
	cfg := a.cfg
	db, err := state.OpenDir(cfg.DataDir, state.Options{})
	if err != nil {
		return err
	}
	defer db.Close()

	roles := newTaskRoles(cfg, a.log)
	auth, err := a.newRegistryAuth(ctx, roles)
	if err != nil {
		return err
	}
	rt, err := a.newRuntime(ctx, auth)
	if err != nil {
		return err
	}
	defer rt.Close()

	ports, err := network.NewPortAllocator(network.AllocatorOptions{
		Range:       network.PortRange{First: cfg.Ports.DynamicRange.First, Last: cfg.Ports.DynamicRange.Last},
		ReservedTCP: cfg.Ports.Reserved,
		ReservedUDP: cfg.Ports.ReservedUDP,
		Store:       db,
	})
	if err != nil {
		return fmt.Errorf("port allocator: %w", err)
	}
	defer ports.Close()
	// The owner tag in every sandbox name is how this agent tells its
	// sandboxes from those of other agents on the host (docs/network.md).
	owner, err := network.OwnerForDir(cfg.DataDir)
	if err != nil {
		return err
	}
	nwOpts := network.Options{
		PluginDirs: cfg.Network.CNIPath,
		Bridge:     cfg.Network.BridgeName,
		NamePrefix: a.o.namePrefix,
		Owner:      owner,
		Ports:      ports,
		Logger:     a.log,
		Datapath:   network.Datapath(cfg.Network.Datapath),
	}
	if cfg.Network.BridgeSubnet.IsValid() {
		nwOpts.Subnet = cfg.Network.BridgeSubnet.String()
	}
	if d := a.o.netRunDir; d != "" {
		nwOpts = nwOpts.InRunDir(d)
	}
	nm, err := network.New(nwOpts)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	// Retries what the network could not remove; ends when Run returns.
	retryCtx, stopRetries := context.WithCancel(ctx)
	retriesDone := make(chan struct{})
	go func() {
		defer close(retriesDone)
		nm.Run(retryCtx)
	}()
	defer func() {
		stopRetries()
		<-retriesDone
	}()

	logs := a.newLogShippers(ctx)
	defer func() {
		// After the engine: every task goroutine (and its drains) ended.
		if err := logs.Close(); err != nil {
			a.log.Warn("stop log shippers", "err", err)
		}
	}()

	// Never nil: an empty ECS_AVAILABLE_LOGGING_DRIVERS allows only
	// json-file and none.
	logDrivers := append([]string{}, cfg.Containers.AvailableLoggingDrivers...)
	cpu, mem := HostResources(cfg.Containers.ReservedMemoryMiB)
	eng, err := engine.New(engine.Options{
		Runtime:       rt,
		Network:       nm,
		Store:         db,
		Logs:          logRemover{},
		LogShipper:    logShipper{m: logs, depsFor: a.awslogsExecutionRole(roles)},
		Secrets:       newSecrets(cfg, roles),
		LogDrivers:    logDrivers,
		DataDir:       cfg.DataDir,
		LogPath:       func(id string) string { return runtime.LogPath(cfg.DataDir+"/logs", id) },
		CPUUnits:      cpu,
		MemoryMiB:     mem,
		StopTimeout:   cfg.Containers.StopTimeout,
		CreateTimeout: cfg.Containers.CreateTimeout,
		StartTimeout:  cfg.Containers.StartTimeout,
		CleanupWait:   cfg.Containers.TaskCleanupWait,
		AfterRecover:  a.afterRecover(nm),
		StepHook:      a.o.stepHook,
		OnStateChange: a.o.onChange,
		Images:        imageCleanup(cfg, rt),
		TaskCgroups:   taskCgroups(cfg),
		Security:      engine.Security{AppArmorCapable: cfg.Containers.AppArmorCapable, SELinuxCapable: cfg.Containers.SELinuxCapable},
		Logger:        a.log,
	})
	if err != nil {
		return err
	}

	sampler, err := a.newSampler(eng, rt)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen.Introspection.String())
	if err != nil {
		return fmt.Errorf("introspection API: listen on %s: %w", cfg.Listen.Introspection, err)
	}
	a.mu.Lock()
	a.eng, a.db, a.listen, a.roles, a.sampler = eng, db, ln.Addr(), roles, sampler
	a.mu.Unlock()
	close(a.started)

	a.log.Info("agent running", "dataDir", cfg.DataDir, "introspection", ln.Addr().String(), "cpuUnits", cpu, "memoryMiB", mem, "networkOwner", owner)
	err = a.runComponents(ctx, components{eng: eng, ln: ln, roles: roles, rt: rt, db: db, logs: logs, nw: nm, sampler: sampler})
	if err == nil && a.o.uninstallNetwork {
		a.uninstallNetwork(ctx, nm, nwOpts.Bridge)
	}
	return err
}

// components are what Agent.Run runs once everything is built.
type components struct {
	eng   *engine.Engine
	ln    net.Listener
	roles *taskRoles
	rt    *runtime.Runtime
	db    *state.DB
	logs  *logship.Shippers
	nw    *network.Sandboxer
	// sampler is nil with metrics disabled.
	sampler *stats.Sampler
}

// runComponents runs the engine, the introspection API and (with task
// roles) the credentials endpoint, each in a goroutine of one group, until
// ctx ends or the first of them stops on its own: that one's error cancels
// the group's context, which ends the others, and the group is waited for,
// so no goroutine (one that would only end with ctx, say) can keep Run from
// returning. The failure is logged when it happens, before the wait.
func (a *Agent) runComponents(ctx context.Context, c components) error {
	g, gctx := errgroup.WithContext(ctx)
	essential := func(name string, run func(context.Context) error) {
		g.Go(func() error {
			err := run(gctx)
			stopping := gctx.Err() != nil
			switch {
			case stopping && (err == nil || errors.Is(err, context.Canceled)):
				return nil // asked to stop, and did
			case err == nil:
				err = errors.New("stopped unexpectedly")
			}
			err = fmt.Errorf("%s: %w", name, err)
			if stopping {
				a.log.Error("agent component failed while stopping", "err", err)
			} else {
				a.log.Error("agent component failed; stopping the agent", "err", err)
			}
			return err
		})
	}
	srv := &http.Server{
		Handler: introspection.New(introspection.Options{
			Tasks:    c.eng,
			Metadata: a.metadata,
			Pending:  c.db.StateChangeCount,
			Logger:   a.log,
			// Log shippers' counters (lines shipped, dropped, ...) and the
			// network's clean-up retries.
			ExtraMetrics: []introspection.PrometheusWriter{c.logs.Metrics(), c.nw},
			Cleanup:      pendingCleanup(c.nw),
		}),
		ReadHeaderTimeout: 10 * time.Second,
		// Requests (log streams) end with the group, not only with ctx.
		BaseContext: func(net.Listener) context.Context { return gctx },
	}
	essential("engine", c.eng.Run)
	essential("introspection API", func(context.Context) error {
		if err := srv.Serve(c.ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close() // requests still running after 5 s are cut
		}
		return nil
	})
	if c.sampler != nil {
		essential("stats sampler", func(ctx context.Context) error {
			select {
			case <-c.eng.Ready():
			case <-ctx.Done():
				return nil
			}
			return c.sampler.Run(ctx)
		})
	}
	if c.roles != nil {
		// Task role credentials and task metadata.
		essential("credentials endpoint", func(ctx context.Context) error { return c.roles.run(ctx, c.eng, c.rt, c.sampler) })
	}
	return g.Wait()
}

// afterRecover is the engine's AfterRecover: the network clean-up, then
// the test seam's hook.
func (a *Agent) afterRecover(nw *network.Sandboxer) func(context.Context, [][]byte) error {
	hook := a.o.afterRecover
	if hook == nil {
		return nw.CleanupHandles
	}
	return func(ctx context.Context, live [][]byte) error {
		if err := nw.CleanupHandles(ctx, live); err != nil {
			return err
		}
		return hook(ctx)
	}
}

func (a *Agent) newRuntime(ctx context.Context, pullAuth runtime.PullAuthorizer) (*runtime.Runtime, error) {
	cfg := a.cfg
	opts := runtime.Options{
		Address:               cfg.Containerd.Address,
		Namespace:             cfg.Containerd.Namespace,
		PullBehavior:          runtime.PullBehavior(cfg.Images.PullBehavior),
		PullTimeout:           cfg.Images.PullTimeout,
		PullInactivityTimeout: cfg.Images.PullInactivityTimeout,
		DisablePrivileged:     cfg.Containers.DisablePrivileged,
		StateDir:              cfg.DataDir + "/containers",
		LoggerBinary:          a.o.loggerBinary,
		InitBinary:            a.o.initBinary,
		Snapshotter:           a.o.snapshotter,
		ConnectTimeout:        time.Minute,
		PullAuth:              pullAuth,
	}
	opts.Registry.InsecureRegistries = cfg.Images.InsecureRegistries
	if cfg.Images.AuthType != "" {
		auth, err := runtime.ParseEngineAuth(cfg.Images.AuthType, cfg.Images.AuthData.Reveal())
		if err != nil {
			return nil, fmt.Errorf("ECS_ENGINE_AUTH_DATA: %w", err)
		}
		opts.Registry.EngineAuth = auth
	}
	rt, err := runtime.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return rt, nil
}

// ConfigFromEnv loads a configuration from KEY=VALUE settings alone,
// ignoring /etc/ecs/ecs.config and the TOML file, for programs that run an
// agent without those files (benchmarks, tests, tools). Errors name the
// offending settings.
func ConfigFromEnv(env []string) (*config.Config, error) {
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	cfg, _, err := config.Load(config.LoadOptions{Env: env, ReadFile: noFiles})
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	return cfg, nil
}

// imageCleanup maps the ECS image clean-up settings.
func imageCleanup(cfg *config.Config, rt *runtime.Runtime) engine.ImageCleanup {
	if cfg.Images.CleanupDisabled {
		return engine.ImageCleanup{}
	}
	return engine.ImageCleanup{
		Store:      rt,
		Interval:   cfg.Images.CleanupInterval,
		MinimumAge: cfg.Images.MinimumCleanupAge,
		PerCycle:   cfg.Images.DeletePerCycle,
	}
}

// taskCgroups maps the task-level resource settings; task cgroups need a
// host whose cgroups can hold them (the registered capability says so too).
func taskCgroups(cfg *config.Config) engine.TaskCgroups {
	if !cfg.Tasks.CPUMemLimit || !runtime.TaskCgroupsSupported() {
		return engine.TaskCgroups{}
	}
	return engine.TaskCgroups{
		Enabled:         true,
		CPUPeriod:       cfg.Tasks.CgroupCPUPeriod,
		PidsLimit:       int64(cfg.Tasks.PidsLimit),
		PropagateMemory: cfg.Tasks.PropagateMemoryLimit && runtime.UnifiedCgroups(),
	}
}

// engine waits until Run has built the engine; it fails (ErrStopped) when
// Run returned before that.
func (a *Agent) engine(ctx context.Context) (*engine.Engine, error) {
	if err := a.waitStarted(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.eng, nil
}

// waitStarted returns once Run has built the engine (nil), Run has ended
// without (ErrStopped, wrapping why) or ctx has ended.
func (a *Agent) waitStarted(ctx context.Context) error {
	select {
	case <-a.started:
		return nil
	case <-a.ended:
		select {
		case <-a.started:
			return nil
		default:
		}
		return a.stoppedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stoppedErr says that Run has returned, and why.
func (a *Agent) stoppedErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runErr == nil {
		return ErrStopped
	}
	return fmt.Errorf("%w: %w", ErrStopped, a.runErr)
}

// HandlePayload hands every task of an ACS payload to the engine. It
// returns once each task and its desired status are durably stored (the
// point at which ACS may be acknowledged). A redelivered payload changes
// nothing; a bad task is stopped with a reason, never an error here.
func (a *Agent) HandlePayload(ctx context.Context, p *api.PayloadMessage) error {
	eng, err := a.engine(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range p.Tasks {
		if t == nil {
			continue
		}
		desired, err := engine.ParseTaskStatus(t.DesiredStatus)
		if err != nil || (desired != engine.TaskRunning && desired != engine.TaskStopped) {
			a.log.Warn("ignore task with unknown desired status", "task", t.Arn, "desiredStatus", t.DesiredStatus)
			continue
		}
		def := engine.FromAPI(t, p.ClusterArn)
		a.mu.Lock()
		roles := a.roles
		a.mu.Unlock()
		if err := roles.apply(t, &def); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", t.Arn, err))
			continue
		}
		if err := eng.Apply(ctx, def, desired); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", t.Arn, err))
		}
	}
	return errors.Join(errs...)
}

// Ready returns once the agent has recovered its tasks and accepts
// payloads, and, with task roles on, its credentials endpoint serves with
// the 169.254.170.2 route in place. Once Run has returned (after a
// failure, say), Ready fails with ErrStopped.
func (a *Agent) Ready(ctx context.Context) error {
	eng, err := a.engine(ctx)
	if err != nil {
		return err
	}
	select {
	case <-eng.Ready():
	case <-a.ended:
		return a.stoppedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	a.mu.Lock()
	roles := a.roles
	a.mu.Unlock()
	if err := roles.ready(ctx); err != nil {
		return err
	}
	select {
	case <-a.ended:
		return a.stoppedErr()
	default:
		return nil
	}
}

// IntrospectionAddr is the address the introspection API listens on (nil
// before Run got that far).
func (a *Agent) IntrospectionAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.listen
}

// Task returns the engine's view of one task.
func (a *Agent) Task(arn string) (engine.TaskState, bool) {
	a.mu.Lock()
	eng := a.eng
	a.mu.Unlock()
	if eng == nil {
		return engine.TaskState{}, false
	}
	return eng.Task(arn)
}

// PendingStateChanges returns the outbox, oldest first.
func (a *Agent) PendingStateChanges() ([]api.StateChange, error) {
	a.mu.Lock()
	db := a.db
	a.mu.Unlock()
	if db == nil {
		return nil, errors.New("agent not running")
	}
	return db.PendingStateChanges(0)
}

func (a *Agent) metadata() introspection.Metadata {
	md := introspection.Metadata{
		Cluster:              a.cfg.Cluster,
		ContainerInstanceArn: a.o.instanceARN,
		Version:              "Berth Agent - " + version.Version,
	}
	a.mu.Lock()
	db := a.db
	a.mu.Unlock()
	if db != nil {
		if id, err := db.Instance(); err == nil {
			md.ContainerInstanceArn = id.ContainerInstanceArn
			if id.ClusterArn != "" {
				md.Cluster = id.ClusterArn
			}
		}
	}
	return md
}

// HostResources is what the instance offers tasks, as registered and as
// the engine's capacity: every CPU at 1024 units and the host's memory in
// MiB less reservedMiB (ECS_RESERVED_MEMORY).
func HostResources(reservedMiB int) (cpuUnits, memMiB int64) {
	cpuUnits = int64(goruntime.NumCPU()) * 1024
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return cpuUnits, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				memMiB = kb/1024 - int64(reservedMiB)
			}
		}
	}
	return cpuUnits, max(memMiB, 0)
}
