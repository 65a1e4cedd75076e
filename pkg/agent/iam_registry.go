package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/ecrauth"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/runtime"
)

// registryAuth picks the login for a task's image pull: for ECR-style
// registries a GetAuthorizationToken login made with the task's execution
// role credentials (the instance's when it has none).
type registryAuth struct {
	// store is nil when task roles are off: execution role credentials
	// then never reach the agent.
	store    *iam.Store
	provider *ecrauth.Provider
}

// PullCredentials returns the credentials to put in runtime.PullOptions
// for ref pulled by taskArn; nil (and no error) when ref's registry is not
// ECR-style, so the agent-wide credentials apply.
func (a *registryAuth) PullCredentials(ctx context.Context, taskArn, ref string) (*runtime.Credentials, error) {
	if a == nil || a.provider == nil || !a.provider.IsECR(ref) {
		return nil, nil
	}
	var exec *ecrauth.RoleCredentials
	if a.store != nil {
		if c, ok := a.store.TaskCredentials(taskArn, api.RoleTypeTaskExecution); ok {
			exec = &ecrauth.RoleCredentials{RoleArn: c.RoleArn, AccessKeyID: c.AccessKeyID,
				SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
		}
	}
	login, _, err := a.provider.Auth(ctx, ref, exec)
	if err != nil {
		return nil, err
	}
	return &runtime.Credentials{Username: login.Username, Password: login.Password}, nil
}

// newRegistryAuth returns the login source of pulls from ECR-style
// registries (*.dkr.ecr.*.amazonaws.com and BERTH_ECR_REGISTRIES): a
// GetAuthorizationToken token made with the task's execution role, which
// reaches the agent only with task roles on (roles non-nil), else with the
// agent's own credentials.
func (a *Agent) newRegistryAuth(ctx context.Context, roles *taskRoles) (*registryAuth, error) {
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
	ra := &registryAuth{provider: p}
	if roles != nil {
		ra.store = roles.store
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
