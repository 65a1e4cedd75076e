package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/logship"
)

// logShipper is the engine's LogShipper on top of logship.Shippers.
type logShipper struct {
	m *logship.Shippers
	// depsFor returns the drivers' dependencies for one task, or nil for
	// the Shippers' (the agent's own credentials): the task's execution
	// role with ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE
	// (awslogsExecutionRole).
	depsFor func(taskARN string) *logship.Deps
}

var _ engine.LogShipper = logShipper{}

func (s logShipper) Start(ctx context.Context, c engine.ContainerLog) error {
	var deps *logship.Deps
	if s.depsFor != nil {
		deps = s.depsFor(c.TaskARN)
	}
	return s.m.StartContainer(ctx, logship.ContainerLog{
		ID:      c.ID,
		LogPath: c.LogPath,
		Driver:  c.Log.Driver,
		Options: c.Log.Options,
		Info: logship.ContainerInfo{
			ID:         c.ID,
			Name:       c.Name,
			ImageName:  c.Image,
			TaskARN:    c.TaskARN,
			TaskID:     engine.TaskID(c.TaskARN),
			TaskFamily: c.Family,
			Cluster:    c.Cluster,
			Labels:     c.Labels,
			Env:        c.Env,
		},
		Deps: deps,
	})
}

func (s logShipper) Drain(ctx context.Context, id string) error { return s.m.DrainContainer(ctx, id) }

func (s logShipper) Remove(id string) error { return s.m.RemoveContainer(id) }

// awslogsExecutionRole returns logShipper.depsFor for
// ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE: the shippers of a task whose
// execution role credentials the store holds sign with them, read from the
// store at each refresh so that IAMRoleCredentialsMessage renewals apply;
// other tasks keep the Shippers' (the agent's own) credentials. nil when
// the setting is off or task roles are (the store exists only with them).
func (a *Agent) awslogsExecutionRole(roles *taskRoles) func(taskARN string) *logship.Deps {
	if !a.cfg.Containers.AWSLogsExecutionRole || roles == nil {
		return nil
	}
	store := roles.store
	return func(taskARN string) *logship.Deps {
		if _, ok := store.TaskCredentials(taskARN, api.RoleTypeTaskExecution); !ok {
			return nil
		}
		deps := a.logDeps(aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			c, ok := store.TaskCredentials(taskARN, api.RoleTypeTaskExecution)
			if !ok {
				return aws.Credentials{}, fmt.Errorf("awslogs: task %s has no execution role credentials any more", taskARN)
			}
			creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
				Source: "ECS task execution role"}
			if exp, err := time.Parse(time.RFC3339, c.Expiration); err == nil {
				creds.CanExpire, creds.Expires = true, exp
			}
			return creds, nil
		})))
		return &deps
	}
}

// logDeps are the drivers' dependencies, signing awslogs with creds.
func (a *Agent) logDeps(creds aws.CredentialsProvider) logship.Deps {
	cfg := a.cfg
	return logship.Deps{
		AWSRegion:       cfg.Region(),
		AWSLogsEndpoint: awsLogsEndpoint(cfg),
		AWSCredentials:  creds,
		Logger:          a.log,
	}
}

// newLogShippers maps the config onto logship.Shippers: positions under
// <ECS_DATADIR>/logship, the agent's region and credentials, and
// BERTH_AWSLOGS_ENDPOINT ("cluster" = ECS_BACKEND_HOST).
func (a *Agent) newLogShippers(ctx context.Context) *logship.Shippers {
	return logship.NewShippers(logship.ShippersOptions{
		PositionDir: filepath.Join(a.cfg.DataDir, "logship"),
		Deps:        a.logDeps(a.agentCredentials(ctx)),
		Logger:      a.log,
	})
}

// awsLogsEndpoint resolves BERTH_AWSLOGS_ENDPOINT: "cluster" means the
// cluster endpoint (ECS_BACKEND_HOST, which serves the log store).
func awsLogsEndpoint(cfg *config.Config) string {
	ep := cfg.Containers.AWSLogsEndpoint
	if ep != "cluster" {
		return ep
	}
	host, _, _ := strings.Cut(cfg.BackendHost, ",") // the first of a list of replicas
	if host != "" && !strings.Contains(host, "://") {
		host = "https://" + host // as ECS_BACKEND_HOST is read elsewhere
	}
	return host
}

// agentCredentials are the agent's own AWS credentials: InstanceCredentials
// (static keys, or the shared credentials file for ECS_EXTERNAL), else the
// SDK's standard chain (resolved lazily, when awslogs first signs a
// request, or an ECR login needs them). An options override comes first.
func (a *Agent) agentCredentials(ctx context.Context) aws.CredentialsProvider {
	if a.o.awsCredentials != nil {
		return a.o.awsCredentials
	}
	cfg := a.cfg
	if p := InstanceCredentials(cfg); p != nil {
		return p
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region()))
	if err != nil {
		a.log.Warn("no AWS credentials for awslogs and ECR logins", "err", fmt.Errorf("load AWS config: %w", err))
		return nil
	}
	return ac.Credentials
}
