// Package member runs a Berth agent as a member of its cluster: beside
// pkg/agent's Agent.Run it registers the container instance
// (pkg/registration), keeps the ACS session that delivers tasks open and
// drains the outbox of state changes to the endpoint. cmd/agent, dev mode
// and the end-to-end tests use it; it maps config.Config onto
// pkg/registration's options and holds no protocol logic itself.
package member

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/logship"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/state"
)

// Host is the agent a member runs beside. *agent.Agent implements it.
type Host interface {
	Run(ctx context.Context) error
	HandlePayload(ctx context.Context, p *api.PayloadMessage) error
	StateDB(ctx context.Context) (*state.DB, error)
	ActiveTaskARNs() []string
	// TaskHealth feeds the TCS session (container health).
	TaskHealth() []*api.TaskHealth
	// TaskMetrics feeds the TCS session (container metrics) unless
	// ECS_DISABLE_METRICS is true.
	TaskMetrics() ([]*api.TaskMetric, bool)
}

var _ Host = (*agent.Agent)(nil)

// Options configure Run.
type Options struct {
	Config *config.Config
	Agent  Host
	// Credentials override the config's static keys and the standard AWS
	// credential chain (dev mode passes its generated agent key).
	Credentials aws.CredentialsProvider
	// HeartbeatTimeout, SubmitPoll and ReconnectBackoff tune the session
	// and submitter (zero: their defaults); tests shorten them.
	HeartbeatTimeout time.Duration
	SubmitPoll       time.Duration
	ReconnectBackoff registration.Backoff
	Logger           *slog.Logger
	// StateChanged, when set, wakes the submitter (see StateChangeSignal).
	StateChanged <-chan struct{}
	// Registered, when set, is called once the instance is registered.
	Registered func(state.InstanceIdentity)
	// Session, when set, receives the ACS session once it exists (tests
	// watch Connected through it).
	Session func(*registration.Session)
	// MetricsInterval is how often metrics are published on TCS; zero
	// means registration.DefaultMetricsInterval (tests shorten it).
	MetricsInterval time.Duration
	// FlushTimeout bounds the last flush of the outbox at shutdown; zero
	// means DefaultFlushTimeout.
	FlushTimeout time.Duration
}

// DefaultFlushTimeout bounds the outbox flush on shutdown, well inside
// systemd's default stop timeout.
const DefaultFlushTimeout = 10 * time.Second

// Run runs the agent and, once its state is open, registers the instance
// and keeps the ACS session, the TCS session (container health) and the
// submitter going until ctx ends or one of them (the agent included) stops
// on its own. The first to stop ends the others: the ACS session is closed
// first, so the endpoint marks the instance disconnected and places nothing
// more on it, then the agent is stopped, and Run returns that first error
// once every goroutine has ended. Terminal registration and session errors
// are *registration.TerminalError (exit code 5 in cmd/agent).
func Run(ctx context.Context, o Options) error {
	if o.Config == nil || o.Agent == nil {
		return errors.New("member: Config and Agent are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg := o.Config
	creds := o.Credentials
	if creds == nil {
		creds = agent.InstanceCredentials(cfg)
	}
	client, err := registration.NewClient(ctx, registration.ClientOptions{
		Endpoint: cfg.BackendHost, Region: cfg.Region(), Credentials: creds, Logger: o.Logger,
	})
	if err != nil {
		return err
	}

	g := newGroup(ctx, o.Logger)
	defer g.stop()
	g.runAgent(o.Agent.Run)
	// result prefers the failure that ended the work (the agent failing is
	// why StateDB or Register gave up) over err.
	result := func(err error) error {
		if errors.Is(err, agent.ErrStopped) {
			<-g.agentDone // the agent's goroutine records why first
		}
		if f := g.failure(); f != nil {
			return f
		}
		return err
	}
	db, err := o.Agent.StateDB(g.work)
	if err != nil {
		return result(err)
	}
	id, err := registration.Register(g.work, registerOptions(cfg, client, db, o.Logger))
	if err != nil {
		return result(err)
	}
	if o.Registered != nil {
		o.Registered(id)
	}
	sess, err := registration.NewSession(registration.SessionOptions{
		API: client.ECS, Credentials: client.Credentials, Region: client.Region,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
		Handler: o.Agent, Tasks: o.Agent, Messages: db,
		AgentVersion: version.Version, AgentHash: version.Version,
		TLSConfig:        tlsConfig(client),
		HeartbeatTimeout: o.HeartbeatTimeout, Backoff: o.ReconnectBackoff,
		Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	if o.Session != nil {
		o.Session(sess)
	}
	sub, err := registration.NewSubmitter(registration.SubmitterOptions{
		Outbox: db, API: client.ECS, Cluster: id.ClusterArn, Poll: o.SubmitPoll, Wake: o.StateChanged, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	telOpts := registration.TelemetryOptions{
		API: client.ECS, Credentials: client.Credentials, Region: client.Region,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
		Health: o.Agent, AgentVersion: version.Version, AgentHash: version.Version,
		MetricsInterval: o.MetricsInterval,
		TLSConfig:       tlsConfig(client), Backoff: o.ReconnectBackoff, Logger: o.Logger,
	}
	if !cfg.Metrics.Disabled {
		telOpts.Metrics = o.Agent
	}
	tel, err := registration.NewTelemetry(telOpts)
	if err != nil {
		return err
	}
	g.spawn("ACS session", sess.Run)
	g.spawn("TCS session", tel.Run)
	g.spawn("state change submitter", sub.Run)
	<-g.work.Done()
	if f := g.failure(); f != nil {
		return f
	}
	// Shutdown: no new work, then a bounded last flush of the outbox while
	// the agent (and its state database) is still up.
	g.stopWork()
	timeout := o.FlushTimeout
	if timeout <= 0 {
		timeout = DefaultFlushTimeout
	}
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancelFlush()
	if err := sub.Flush(flushCtx); err != nil {
		n, _ := db.StateChangeCount()
		o.Logger.Warn("outbox not fully flushed at shutdown; the rest is sent at the next start", "pending", n, "err", err)
	}
	return result(ctx.Err())
}

// group owns a member's goroutines, in two lifetimes: the work (the ACS
// and TCS sessions and the submitter, and Run's own registration steps)
// ends as soon as ctx does, so no new task arrives; the agent runs until
// stop, because the last flush of the outbox needs its state database.
// The first goroutine to end on its own, failing or not, cancels the work
// with its error (failure returns it); stop ends the work, waits for it,
// then ends the agent and waits for it.
type group struct {
	log *slog.Logger
	// work is the work's context; cancelWork's cause is the first failure.
	work       context.Context
	cancelWork context.CancelCauseFunc
	workWG     sync.WaitGroup
	// agentCtx ends only at stop; agentDone is closed when the agent ended.
	agentCtx  context.Context
	stopAgent context.CancelFunc
	agentDone chan struct{}
	stopOnce  sync.Once
	// mu guards first.
	mu    sync.Mutex
	first error
}

func newGroup(ctx context.Context, log *slog.Logger) *group {
	g := &group{log: log, agentDone: make(chan struct{})}
	g.work, g.cancelWork = context.WithCancelCause(ctx)
	g.agentCtx, g.stopAgent = context.WithCancel(context.WithoutCancel(ctx))
	return g
}

// fail records the first failure and ends the work.
func (g *group) fail(name string, err error) {
	if err == nil {
		err = errors.New("stopped unexpectedly")
	}
	err = fmt.Errorf("%s: %w", name, err)
	g.mu.Lock()
	first := g.first == nil
	if first {
		g.first = err
	}
	g.mu.Unlock()
	if first {
		g.log.Error("stopping: a part of the agent failed", "err", err)
	}
	g.cancelWork(err)
}

// failure is the first failure, or nil.
func (g *group) failure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.first
}

// runAgent runs the agent until stop; its ending before that is a failure.
func (g *group) runAgent(run func(context.Context) error) {
	go func() {
		defer close(g.agentDone)
		err := run(g.agentCtx)
		if g.agentCtx.Err() == nil {
			g.fail("agent", err)
		}
	}()
}

// spawn runs fn with the work's context; its ending before the work was
// cancelled is a failure.
func (g *group) spawn(name string, fn func(context.Context) error) {
	g.workWG.Add(1)
	go func() {
		defer g.workWG.Done()
		err := fn(g.work)
		if g.work.Err() == nil {
			g.fail(name, err)
		}
	}()
}

// stopWork ends the work (the ACS session first of all) and waits for it.
func (g *group) stopWork() {
	g.cancelWork(nil)
	g.workWG.Wait()
}

// stop ends the work, then the agent, and waits for both.
func (g *group) stop() {
	g.stopOnce.Do(func() {
		g.stopWork()
		g.stopAgent()
		<-g.agentDone
	})
}

// StateChangeSignal returns a hook for agent.WithStateChangeHook and the
// channel it signals, for Options.StateChanged: the submitter then sends
// state changes as soon as the engine wrote them.
func StateChangeSignal() (hook func(), ch <-chan struct{}) {
	c := make(chan struct{}, 1)
	return func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}, c
}

// instanceAttributes are ECS_INSTANCE_ATTRIBUTES, as the ECS agent
// registers it ecs.os-type-detailed (ECS_DETAILED_OS_FAMILY), and
// berth.host-address (BERTH_HOST_ADDRESS) for load balancers.
func instanceAttributes(cfg *config.Config) map[string]string {
	attrs := maps.Clone(cfg.Instance.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if cfg.Instance.DetailedOSFamily != "" {
		attrs["ecs.os-type-detailed"] = cfg.Instance.DetailedOSFamily
	}
	if _, set := attrs[HostAddressAttribute]; !set {
		if a := hostAddress(cfg, net.Interfaces); a != "" {
			attrs[HostAddressAttribute] = a
		}
	}
	return attrs
}

func registerOptions(cfg *config.Config, client *registration.Client, db *state.DB, log *slog.Logger) registration.RegisterOptions {
	cpu, mem := agent.HostResources(cfg.Containers.ReservedMemoryMiB)
	ports := append([]uint16(nil), cfg.Ports.Reserved...)
	if cfg.Ports.ReserveDynamic {
		for p := int(cfg.Ports.DynamicRange.First); p <= int(cfg.Ports.DynamicRange.Last); p++ {
			ports = append(ports, uint16(p))
		}
	}
	return registration.RegisterOptions{
		API: client.ECS, Store: db, Cluster: cfg.Cluster,
		Resources: registration.Resources{CPU: cpu, MemoryMiB: mem, Ports: ports, PortsUDP: cfg.Ports.ReservedUDP},
		Capabilities: registration.Capabilities(registration.CapabilityOptions{
			LoggingDrivers:          cfg.Containers.AvailableLoggingDrivers,
			SupportedLoggingDrivers: logship.KnownDrivers(),
			Privileged:              !cfg.Containers.DisablePrivileged,
		}),
		Attributes:   instanceAttributes(cfg),
		Tags:         cfg.Instance.Tags,
		AgentVersion: version.Version, AgentHash: version.Version,
		Logger: log,
	}
}
