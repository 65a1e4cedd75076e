package agent

// This file runs an agent as a member of its cluster (WithMembership):
// beside the engine, Run registers the container instance
// (pkg/registration), keeps the ACS session that delivers tasks and the TCS
// session (health, metrics) open and drains the outbox of state changes to
// the endpoint. It maps config.Config onto pkg/registration's options and
// holds no protocol logic itself.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/logship"
	"github.com/berth-dev/berth/pkg/registration"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/state"
)

// Membership makes Run a member of the config's cluster (WithMembership).
// Every field is optional.
type Membership struct {
	// Credentials override the config's static keys and the standard AWS
	// credential chain (dev mode passes its generated agent key).
	Credentials aws.CredentialsProvider
	// HeartbeatTimeout, SubmitPoll and ReconnectBackoff tune the session
	// and submitter (zero: their defaults); tests shorten them.
	HeartbeatTimeout time.Duration
	SubmitPoll       time.Duration
	ReconnectBackoff registration.Backoff
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

// WithMembership makes Run register the instance with the config's
// cluster and run the ACS and TCS sessions and the state change submitter
// beside the engine; without it Run only runs tasks handed to
// HandlePayload.
func WithMembership(m Membership) Option { return func(o *options) { o.membership = &m } }

// DefaultFlushTimeout bounds the outbox flush on shutdown, well inside
// systemd's default stop timeout.
const DefaultFlushTimeout = 10 * time.Second

// runMember runs the agent (runNode) and, once its state is open,
// registers the instance and keeps the ACS session, the TCS session
// (container health and metrics) and the submitter going until ctx ends or
// one of them (the agent included) stops on its own. The first to stop ends
// the others: the ACS session is closed first, so the endpoint marks the
// instance disconnected and places nothing more on it, then the agent is
// stopped, and runMember returns that first error once every goroutine has
// ended. Terminal registration and session errors are
// *registration.TerminalError (exit code 5 in cmd/agent).
func (a *Agent) runMember(ctx context.Context, m Membership) error {
	cfg, log := a.cfg, a.log
	creds := m.Credentials
	if creds == nil {
		creds = InstanceCredentials(cfg)
	}
	client, err := registration.NewClient(ctx, registration.ClientOptions{
		Endpoint: cfg.BackendHost, Region: cfg.Region(), Credentials: creds, Logger: log,
	})
	if err != nil {
		return err
	}

	g := newGroup(ctx, log)
	defer g.stop()
	g.runAgent(a.runNode)
	// result prefers the failure that ended the work (the agent failing is
	// why stateDB or Register gave up) over err.
	result := func(err error) error {
		if errors.Is(err, ErrStopped) {
			<-g.agentDone // the agent's goroutine records why first
		}
		if f := g.failure(); f != nil {
			return f
		}
		return err
	}
	db, err := a.stateDB(g.work)
	if err != nil {
		return result(err)
	}
	id, err := registration.Register(g.work, registerOptions(cfg, client, db, log))
	if err != nil {
		return result(err)
	}
	if m.Registered != nil {
		m.Registered(id)
	}
	sess, err := registration.NewSession(registration.SessionOptions{
		API: client.ECS, Credentials: client.Credentials, Region: client.Region,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
		Handler: a, Tasks: a, Messages: db,
		AgentVersion: version.Version, AgentHash: version.Version,
		TLSConfig:        tlsConfig(client),
		HeartbeatTimeout: m.HeartbeatTimeout, Backoff: m.ReconnectBackoff,
		Logger: log,
	})
	if err != nil {
		return err
	}
	if m.Session != nil {
		m.Session(sess)
	}
	sub, err := registration.NewSubmitter(registration.SubmitterOptions{
		Outbox: db, API: client.ECS, Cluster: id.ClusterArn, Poll: m.SubmitPoll, Wake: a.stateChanged, Logger: log,
	})
	if err != nil {
		return err
	}
	telOpts := registration.TelemetryOptions{
		API: client.ECS, Credentials: client.Credentials, Region: client.Region,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
		Health: a, AgentVersion: version.Version, AgentHash: version.Version,
		MetricsInterval: m.MetricsInterval,
		TLSConfig:       tlsConfig(client), Backoff: m.ReconnectBackoff, Logger: log,
	}
	if !cfg.Metrics.Disabled {
		telOpts.Metrics = a
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
	timeout := m.FlushTimeout
	if timeout <= 0 {
		timeout = DefaultFlushTimeout
	}
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancelFlush()
	if err := sub.Flush(flushCtx); err != nil {
		n, _ := db.StateChangeCount()
		log.Warn("outbox not fully flushed at shutdown; the rest is sent at the next start", "pending", n, "err", err)
	}
	return result(ctx.Err())
}

// stateDB waits until runNode has opened the state database and returns
// it. The database stays open until runNode returns; callers must stop
// using it then. It fails (ErrStopped) when runNode returned before
// opening it.
func (a *Agent) stateDB(ctx context.Context) (*state.DB, error) {
	if err := a.waitStarted(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db, nil
}

// ActiveTaskARNs returns the tasks the engine holds whose desired status is
// not STOPPED (nil before Run has built the engine), for the ACS session
// (registration.TaskLister).
func (a *Agent) ActiveTaskARNs() []string {
	a.mu.Lock()
	eng := a.eng
	a.mu.Unlock()
	if eng == nil {
		return nil
	}
	var out []string
	for _, t := range eng.Tasks() {
		if t.DesiredStatus != engine.TaskStopped {
			out = append(out, t.Def.ARN)
		}
	}
	return out
}

// TaskHealth is the engine's (registration.HealthSource); nil before the
// engine starts.
func (a *Agent) TaskHealth() []container.TaskHealth {
	a.mu.Lock()
	eng := a.eng
	a.mu.Unlock()
	if eng == nil {
		return nil
	}
	return eng.TaskHealth()
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
	cpu, mem := HostResources(cfg.Containers.ReservedMemoryMiB)
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
			TaskCPUMemLimit:         cfg.Tasks.CPUMemLimit && runtime.TaskCgroupsSupported(),
			SELinux:                 cfg.Containers.SELinuxCapable,
			AppArmor:                cfg.Containers.AppArmorCapable,
		}),
		Attributes:   instanceAttributes(cfg),
		Tags:         cfg.Instance.Tags,
		AgentVersion: version.Version, AgentHash: version.Version,
		Logger: log,
	}
}

// tlsConfig reuses the SDK transport's TLS settings (AWS_CA_BUNDLE) for
// the websocket.
func tlsConfig(c *registration.Client) *tls.Config {
	if c.HTTPClient == nil {
		return nil
	}
	if tr := c.HTTPClient.GetTransport(); tr != nil && tr.TLSClientConfig != nil {
		return tr.TLSClientConfig.Clone()
	}
	return nil
}
