package agent

// This file and the other iam_*.go files are the agent's side of task IAM
// roles and task metadata: pkg/iam serves credentials and metadata from a
// store it owns; the agent feeds that store from ACS, adds the credentials
// and metadata variables to a task's containers (decorateTask), answers
// pkg/iam's questions from the engine's task states (iam_lookup.go), runs
// the server with its iptables route (iam_endpoint.go) and builds, once at
// start, what does the execution role's work on a task's path: pkg/execrole's
// registry logins and secrets (execrole.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
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
	if n := restoreCredentialIDs(r.store, eng); n > 0 {
		r.log.Info("task role credentials ids restored; waiting for ACS to resend the credentials", "tasks", n)
	}
	cfg := r.cfg
	lookup := &taskLookup{tasks: eng, stats: rt}
	if sampler != nil {
		lookup.samples = sampler
	}
	err := serveCredentials(ctx, credentialsOptions{
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
	return decorateTask(def, t)
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

// taskStates is the part of *engine.Engine the task role glue reads.
type taskStates interface {
	Tasks() []engine.TaskState
	Task(arn string) (engine.TaskState, bool)
}

var _ taskStates = (*engine.Engine)(nil)

// decorateTask adds to every container of def the variables the agent
// injects: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI when the task has a role,
// and the task metadata URIs with a fresh per-container id. The engine
// stores the first definition it receives, so the ids of a redelivered
// task are those of its first delivery.
func decorateTask(def *engine.TaskDef, t *api.Task) error {
	credID := ""
	if t.RoleCredentials != nil {
		credID = t.RoleCredentials.CredentialsID
	}
	for i := range def.Containers {
		metaID, err := iam.NewID()
		if err != nil {
			return fmt.Errorf("task %s container %s: %w", def.ARN, def.Containers[i].Name, err)
		}
		spec := &def.Containers[i].Spec
		spec.Env = append(spec.Env, iam.ContainerEnv(credID, metaID)...)
	}
	return nil
}

// envValue returns the value of key in a "K=V" list.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// credentialsID is the id a stored task's containers were given.
func credentialsID(t *engine.TaskState) string {
	for _, c := range t.Def.Containers {
		if v := envValue(c.Spec.Env, iam.EnvCredentialsRelativeURI); v != "" {
			return strings.TrimPrefix(v, iam.V2CredentialsPath+"/")
		}
	}
	return ""
}

// metadataID is a stored container's task metadata id.
func metadataID(c *engine.ContainerDef) string {
	v := envValue(c.Spec.Env, iam.EnvMetadataURIV4)
	if i := strings.LastIndexByte(v, '/'); i >= 0 {
		return v[i+1:]
	}
	return ""
}

// restoreCredentialIDs tells store the credentials id of every task the
// engine recovered that is not stopped: they answer 503
// CredentialsUninitialized until ACS resends the credentials (never stored
// on disk).
func restoreCredentialIDs(store *iam.Store, tasks taskStates) int {
	n := 0
	for _, t := range tasks.Tasks() {
		if t.KnownStatus == engine.TaskStopped {
			continue
		}
		if id := credentialsID(&t); id != "" {
			store.Expect(t.Def.ARN, api.RoleTypeTaskApplication, id)
			n++
		}
	}
	return n
}
