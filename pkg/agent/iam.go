package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/iam/agentiam"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/runtime"
)

// taskRoles is the agent's side of task IAM roles and task metadata
// (ECS_ENABLE_TASK_IAM_ROLE); nil when it is off. Credentials are held in
// memory only.
type taskRoles struct {
	cfg   *config.Config
	store *iam.Store
	log   *slog.Logger
}

func newTaskRoles(cfg *config.Config, log *slog.Logger) *taskRoles {
	if !cfg.IAM.EnableTaskRole {
		return nil
	}
	return &taskRoles{cfg: cfg, store: iam.NewStore(), log: log}
}

// run restores the ids of recovered tasks once the engine is ready, then
// serves the credentials and metadata endpoints (with the iptables route
// from 169.254.170.2) until ctx ends.
func (r *taskRoles) run(ctx context.Context, eng *engine.Engine, rt *runtime.Runtime) error {
	select {
	case <-eng.Ready():
	case <-ctx.Done():
		return nil
	}
	if n := agentiam.Restore(r.store, eng); n > 0 {
		r.log.Info("task role credentials ids restored; waiting for ACS to resend the credentials", "tasks", n)
	}
	cfg := r.cfg
	err := agentiam.Run(ctx, agentiam.ServiceOptions{
		Store:        r.store,
		Lookup:       &agentiam.Lookup{Engine: eng, Stats: rt},
		Addr:         cfg.Listen.Credentials,
		AuditLogFile: cfg.IAM.AuditLogFile,
		RateLimit:    iam.RateLimit{RPS: float64(cfg.IAM.MetadataRateLimit.RPS), Burst: cfg.IAM.MetadataRateLimit.Burst},
		Route: &network.CredentialsRoute{Bridge: cfg.Network.BridgeName,
			HostNetwork: cfg.IAM.EnableTaskRoleNetworkHost, BlockIMDS: cfg.IAM.AWSVPCBlockIMDS},
		Logger: r.log,
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
