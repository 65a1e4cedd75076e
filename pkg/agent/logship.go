package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/logship"
)

// logShipper is the engine's LogShipper on top of a logship.Manager.
type logShipper struct {
	m *logship.Manager
	// depsFor returns the drivers' dependencies for one task, or nil for
	// the Manager's (the agent's own credentials). It is the seam for
	// execution-role credentials (logsAuthStrategy ExecutionRole): when
	// pkg/iam holds the task's execution role, return Deps whose
	// AWSCredentials is that role's provider.
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

// newLogManager maps the config onto a logship.Manager: positions under
// <ECS_DATADIR>/logship, the agent's region and credentials, and
// BERTH_AWSLOGS_ENDPOINT ("cluster" = ECS_BACKEND_HOST).
func (a *Agent) newLogManager(ctx context.Context) *logship.Manager {
	cfg := a.cfg
	deps := logship.Deps{
		AWSRegion:       cfg.Region(),
		AWSLogsEndpoint: awsLogsEndpoint(cfg),
		AWSCredentials:  a.agentCredentials(ctx),
		Logger:          a.log,
	}
	return logship.NewManager(logship.ManagerOptions{
		PositionDir: filepath.Join(cfg.DataDir, "logship"),
		Deps:        deps,
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
	host := cfg.BackendHost
	if host != "" && !strings.Contains(host, "://") {
		host = "https://" + host // as ECS_BACKEND_HOST is read elsewhere
	}
	return host
}

// agentCredentials are the agent's own AWS credentials: the config's
// static keys, else the SDK's standard chain (resolved lazily, when awslogs
// first signs a request, or an ECR login needs them). An options override
// comes first.
func (a *Agent) agentCredentials(ctx context.Context) aws.CredentialsProvider {
	if a.o.awsCredentials != nil {
		return a.o.awsCredentials
	}
	cfg := a.cfg
	if cfg.AWS.AccessKeyID != "" {
		return credentials.NewStaticCredentialsProvider(cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey.Reveal(), cfg.AWS.SessionToken.Reveal())
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region()))
	if err != nil {
		a.log.Warn("no AWS credentials for awslogs and ECR logins", "err", fmt.Errorf("load AWS config: %w", err))
		return nil
	}
	return ac.Credentials
}
