package agentiam

import (
	"context"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/ecrauth"
	"github.com/berth-dev/berth/pkg/iam"
	"github.com/berth-dev/berth/pkg/runtime"
)

// RegistryAuth picks the login for a task's image pull: for ECR-style
// registries a GetAuthorizationToken login made with the task's execution
// role credentials (the instance's when it has none).
type RegistryAuth struct {
	Store    *iam.Store
	Provider *ecrauth.Provider
}

// PullCredentials returns the credentials to put in runtime.PullOptions
// for ref pulled by taskArn; nil (and no error) when ref's registry is not
// ECR-style, so the agent-wide credentials apply.
func (a *RegistryAuth) PullCredentials(ctx context.Context, taskArn, ref string) (*runtime.Credentials, error) {
	if a == nil || a.Provider == nil || !a.Provider.IsECR(ref) {
		return nil, nil
	}
	var exec *ecrauth.RoleCredentials
	if a.Store != nil {
		if c, ok := a.Store.TaskCredentials(taskArn, api.RoleTypeTaskExecution); ok {
			exec = &ecrauth.RoleCredentials{RoleArn: c.RoleArn, AccessKeyID: c.AccessKeyID,
				SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
		}
	}
	login, _, err := a.Provider.Auth(ctx, ref, exec)
	if err != nil {
		return nil, err
	}
	return &runtime.Credentials{Username: login.Username, Password: login.Password}, nil
}
