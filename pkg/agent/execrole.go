package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/berth-dev/berth/pkg/config"
	"github.com/berth-dev/berth/pkg/ecrauth"
	"github.com/berth-dev/berth/pkg/execrole"
)

// The execution role's work on a task's path (secrets, registry logins)
// is pkg/execrole's; what is composed here, once at start, is where it
// goes: the endpoint of SSM and Secrets Manager, the ECR-style
// registries, the instance's credentials for tasks without a role.

// newSecrets returns the engine's SecretSource: the tasks' execution role
// credentials (roles non-nil only with task roles on) against the cluster
// endpoint, or AWS's endpoints when the agent is joined to Amazon ECS.
func newSecrets(cfg *config.Config, roles *taskRoles) *execrole.Secrets {
	o := execrole.SecretsOptions{Region: cfg.Region(), Endpoint: secretsEndpoint(cfg.BackendHost)}
	if roles != nil {
		o.Roles = roles.store
	}
	return execrole.NewSecrets(o)
}

// secretsEndpoint is where secrets are fetched from: the cluster endpoint
// (the first of a list of replicas), or "" (AWS) when the backend is
// Amazon ECS itself (no backend host, or one under amazonaws.com).
func secretsEndpoint(backendHost string) string {
	host, _, _ := strings.Cut(backendHost, ",")
	host = strings.TrimSpace(host)
	if host == "" {
		return ""
	}
	if u, err := url.Parse(host); err == nil && (u.Hostname() == "amazonaws.com" || strings.HasSuffix(u.Hostname(), ".amazonaws.com")) {
		return ""
	}
	return host
}

// newRegistryAuth returns the login source of pulls from ECR-style
// registries (*.dkr.ecr.*.amazonaws.com and BERTH_ECR_REGISTRIES): a
// GetAuthorizationToken token made with the task's execution role, which
// reaches the agent only with task roles on (roles non-nil), else with the
// agent's own credentials.
func (a *Agent) newRegistryAuth(ctx context.Context, roles *taskRoles) (*execrole.RegistryLogins, error) {
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
	l := &execrole.RegistryLogins{Provider: p}
	if roles != nil {
		l.Roles = roles.store
	}
	return l, nil
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
