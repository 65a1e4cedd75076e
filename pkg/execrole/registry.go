package execrole

import (
	"context"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
	"github.com/berth-dev/berth/pkg/ecrauth"
	"github.com/berth-dev/berth/pkg/iam"
)

// RegistryLogins is the runtime's PullAuthorizer: it picks the login for a
// task's image pull. For ECR-style registries it is a GetAuthorizationToken
// login made with the task's execution role credentials (the instance's
// when the task has none, as the Provider is configured); other registries
// get none, so the agent-wide credentials apply.
type RegistryLogins struct {
	// Roles is nil when task roles are off: execution role credentials
	// then never reach the agent.
	Roles    *iam.Store
	Provider *ecrauth.Provider
}

// PullCredentials returns the login for ref pulled by taskArn; nil (and no
// error) when ref's registry is not ECR-style.
func (l *RegistryLogins) PullCredentials(ctx context.Context, taskArn, ref string) (*container.Credentials, error) {
	if l == nil || l.Provider == nil || !l.Provider.IsECR(ref) {
		return nil, nil
	}
	var exec *ecrauth.RoleCredentials
	if l.Roles != nil {
		if c, ok := l.Roles.TaskCredentials(taskArn, api.RoleTypeTaskExecution); ok {
			exec = &ecrauth.RoleCredentials{RoleArn: c.RoleArn, AccessKeyID: c.AccessKeyID,
				SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
		}
	}
	login, _, err := l.Provider.Auth(ctx, ref, exec)
	if err != nil {
		return nil, err
	}
	return &container.Credentials{Username: login.Username, Password: login.Password}, nil
}
