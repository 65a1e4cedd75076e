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
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

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
	// FlushTimeout bounds the last flush of the outbox at shutdown; zero
	// means DefaultFlushTimeout.
	FlushTimeout time.Duration
}

// DefaultFlushTimeout bounds the outbox flush on shutdown, well inside
// systemd's default stop timeout.
const DefaultFlushTimeout = 10 * time.Second

// Run runs the agent and, once its state is open, registers the instance
// and keeps the ACS session, the TCS session (container health) and the
// submitter going until ctx ends or one
// of them fails for good. Terminal registration and session errors are
// *registration.TerminalError (exit code 5 in cmd/agent).
func Run(ctx context.Context, o Options) error {
	if o.Config == nil || o.Agent == nil {
		return errors.New("member: Config and Agent are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg := o.Config
	creds := o.Credentials
	if creds == nil && cfg.AWS.AccessKeyID != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey.Reveal(), cfg.AWS.SessionToken.Reveal())
	}
	client, err := registration.NewClient(ctx, registration.ClientOptions{
		Endpoint: cfg.BackendHost, Region: cfg.Region(), Credentials: creds,
	})
	if err != nil {
		return err
	}

	// Two lifetimes: work (the ACS session and the submitter) ends as soon as
	// ctx does, so no new task arrives; the agent itself runs until the
	// outbox was flushed, because the flush needs its state database.
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	agentCtx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgent()
	var agentWG, workWG sync.WaitGroup
	defer agentWG.Wait()
	errc := make(chan error, 5)
	spawn := func(wg *sync.WaitGroup, ctx context.Context, name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ctx)
			if err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			} else if err == nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s stopped", name)
			}
		}()
	}
	// stop ends the work, then the agent, and waits for both (deferred
	// Waits cover the early returns).
	stop := func() {
		stopWork()
		workWG.Wait()
		stopAgent()
	}
	defer stop()

	spawn(&agentWG, agentCtx, "agent", o.Agent.Run)
	db, err := o.Agent.StateDB(workCtx)
	if err != nil {
		return firstErr(errc, err)
	}
	id, err := registration.Register(workCtx, registerOptions(cfg, client, db, o.Logger))
	if err != nil {
		return firstErr(errc, err)
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
	tel, err := registration.NewTelemetry(registration.TelemetryOptions{
		API: client.ECS, Credentials: client.Credentials, Region: client.Region,
		ClusterArn: id.ClusterArn, ContainerInstanceArn: id.ContainerInstanceArn,
		Health: o.Agent, AgentVersion: version.Version, AgentHash: version.Version,
		TLSConfig: tlsConfig(client), Backoff: o.ReconnectBackoff, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	spawn(&workWG, workCtx, "ACS session", sess.Run)
	spawn(&workWG, workCtx, "TCS session", tel.Run)
	spawn(&workWG, workCtx, "state change submitter", sub.Run)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Shutdown: no new work, then a bounded last flush of the outbox while
	// the agent (and its state database) is still up.
	stopWork()
	workWG.Wait()
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
	return ctx.Err()
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

// firstErr prefers an error a goroutine reported (the agent failing is why
// StateDB or Register gave up) over err.
func firstErr(errc <-chan error, err error) error {
	select {
	case e := <-errc:
		return e
	default:
		return err
	}
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
		Attributes:   cfg.Instance.Attributes,
		Tags:         cfg.Instance.Tags,
		AgentVersion: version.Version, AgentHash: version.Version,
		Logger: log,
	}
}
