package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/ecrauth"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/iam/agentiam"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/runtime"
	"github.com/berth-dev/berth/pkg/stats"
)

// taskRoles is the agent's side of task IAM roles and task metadata
// (ECS_ENABLE_TASK_IAM_ROLE); nil when it is off. Credentials are held in
// memory only.
type taskRoles struct {
	cfg   *config.Config
	store *iam.Store
	log   *slog.Logger
	// serving is closed once the endpoint listens with its route in
	// place; ended once run has returned (after a failure, never serving).
	serving, ended chan struct{}
}

func newTaskRoles(cfg *config.Config, log *slog.Logger) *taskRoles {
	if !cfg.IAM.EnableTaskRole {
		return nil
	}
	return &taskRoles{cfg: cfg, store: iam.NewStore(), log: log, serving: make(chan struct{}), ended: make(chan struct{})}
}

// ready returns once the endpoint serves, or once run has returned without
// (the agent is stopping; Agent.Ready then reports it).
func (r *taskRoles) ready(ctx context.Context) error {
	if r == nil {
		return nil
	}
	select {
	case <-r.serving:
		return nil
	case <-r.ended:
		select {
		case <-r.serving:
			return nil
		default:
			return fmt.Errorf("%w: the credentials endpoint never served", ErrStopped)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run restores the ids of recovered tasks once the engine is ready, then
// serves the credentials and metadata endpoints (with the iptables route
// from 169.254.170.2) until ctx ends. An error (the address is taken, the
// route cannot be installed) stops the agent.
func (r *taskRoles) run(ctx context.Context, eng *engine.Engine, rt *runtime.Runtime, sampler *stats.Sampler) error {
	defer close(r.ended)
	select {
	case <-eng.Ready():
	case <-ctx.Done():
		return nil
	}
	if ctx.Err() != nil {
		return nil // the engine's recovery failed: the agent is stopping
	}
	if n := agentiam.Restore(r.store, eng); n > 0 {
		r.log.Info("task role credentials ids restored; waiting for ACS to resend the credentials", "tasks", n)
	}
	cfg := r.cfg
	lookup := &agentiam.Lookup{Engine: eng, Stats: rt}
	if sampler != nil {
		lookup.Samples = sampler
	}
	err := agentiam.Run(ctx, agentiam.ServiceOptions{
		Store:        r.store,
		Lookup:       lookup,
		Addr:         cfg.Listen.Credentials,
		AuditLogFile: cfg.AuditLog(),
		RateLimit:    iam.RateLimit{RPS: float64(cfg.IAM.MetadataRateLimit.RPS), Burst: cfg.IAM.MetadataRateLimit.Burst},
		Route: &network.CredentialsRoute{Bridge: cfg.Network.BridgeName,
			HostNetwork: cfg.IAM.EnableTaskRoleNetworkHost, BlockIMDS: cfg.IAM.AWSVPCBlockIMDS},
		Logger: r.log,
		Ready:  r.serving,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("task roles: %w", err)
	}
	return nil
}

// apply takes a payload task's credentials and adds the credentials and
// metadata variables to its containers, before the engine stores it.
func (r *taskRoles) apply(t *api.Task, def *engine.TaskDef) error {
	if r == nil {
		return nil
	}
	r.store.SetTask(t)
	return agentiam.Decorate(def, t)
}

// HandleCredentials stores the credentials of an IAMRoleCredentialsMessage
// and returns the acknowledgement for ACS (registration.CredentialsHandler).
func (a *Agent) HandleCredentials(ctx context.Context, m *api.IAMRoleCredentialsMessage) (*api.IAMRoleCredentialsAckRequest, error) {
	if _, err := a.engine(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	r := a.roles
	a.mu.Unlock()
	if r == nil {
		// Acknowledged all the same, so the endpoint does not resend forever.
		a.log.Warn("ignoring task role credentials (ECS_ENABLE_TASK_IAM_ROLE is off)", "task", m.TaskArn)
		return &api.IAMRoleCredentialsAckRequest{MessageID: m.MessageID}, nil
	}
	return r.store.ApplyRefresh(m)
}

// registryAuth returns the login source of pulls from ECR-style registries
// (*.dkr.ecr.*.amazonaws.com and BERTH_ECR_REGISTRIES): a
// GetAuthorizationToken token made with the task's execution role, which
// reaches the agent only with task roles on (roles non-nil), else with the
// agent's own credentials.
func (a *Agent) registryAuth(ctx context.Context, roles *taskRoles) (*agentiam.RegistryAuth, error) {
	cfg := a.cfg
	var regs []ecrauth.Registry
	for _, host := range slices.Sorted(maps.Keys(cfg.Images.ECRRegistries)) {
		regs = append(regs, ecrauth.Registry{Host: host, Endpoint: cfg.Images.ECRRegistries[host], Region: cfg.Region()})
	}
	p, err := ecrauth.New(ecrauth.Options{
		Registries: regs,
		// Resolved only when an ECR image is pulled without an execution role.
		InstanceCredentials: aws.NewCredentialsCache(lazyCredentials(func() aws.CredentialsProvider { return a.agentCredentials(ctx) })),
		HTTPClient:          awshttp.NewBuildableClient().WithTimeout(time.Minute),
	})
	if err != nil {
		return nil, fmt.Errorf("registry auth: %w", err)
	}
	ra := &agentiam.RegistryAuth{Provider: p}
	if roles != nil {
		ra.Store = roles.store
	}
	return ra, nil
}

// lazyCredentials defers building a credentials provider (which may load
// the SDK's configuration) to the first Retrieve.
type lazyCredentials func() aws.CredentialsProvider

// Retrieve implements aws.CredentialsProvider.
func (l lazyCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p := l()
	if p == nil {
		return aws.Credentials{}, errors.New("no AWS credentials for the agent")
	}
	return p.Retrieve(ctx)
}
