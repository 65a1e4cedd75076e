package roles

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/pkg/api"
)

// Placement is a task as the ACS server is about to send it to an agent.
type Placement struct {
	ClusterArn           string
	ContainerInstanceArn string
	TaskArn              string
	// TaskRoleArn and ExecutionRoleArn come from the task definition;
	// empty means the task has no such role.
	TaskRoleArn      string
	ExecutionRoleArn string
	// Stopped is a desired status of STOPPED: nothing is issued and the
	// task is no longer refreshed.
	Stopped bool
}

// BrokerOptions configure a Broker.
type BrokerOptions struct {
	Issuer *Issuer
	Sender Sender
	// IDKey, when set, derives each task role's credentials id from the
	// task ARN and role type with HMAC-SHA256 under this key, so that the
	// id survives an endpoint restart (containers hold it in their
	// environment) without being stored. Without it ids are random and
	// kept in memory only. Use a secret the endpoint already keeps, such
	// as a key derived from its master key.
	IDKey []byte
	// Refresher tuning; zero values take the Refresher's defaults.
	Refresher RefresherOptions
}

// Broker is what the ACS server uses: credentials for a task's payload,
// refreshed afterwards until the task stops. It combines an Issuer and a
// Refresher.
type Broker struct {
	issuer *Issuer
	key    []byte
	*Refresher
}

// NewBroker returns a Broker; call Run (the Refresher's) to refresh.
func NewBroker(o BrokerOptions) (*Broker, error) {
	if o.Issuer == nil {
		return nil, errors.New("roles broker: issuer is required")
	}
	ro := o.Refresher
	ro.Issuer, ro.Sender = o.Issuer, o.Sender
	r, err := NewRefresher(ro)
	if err != nil {
		return nil, err
	}
	return &Broker{issuer: o.Issuer, key: o.IDKey, Refresher: r}, nil
}

// DeriveCredentialsID returns the credentials id of one role of a task
// under key: a version 4 UUID layout over HMAC-SHA256(key, task|role).
// Unguessable without key, stable for the task's life.
func DeriveCredentialsID(key []byte, taskArn, roleType string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(taskArn + "|" + roleType))
	b := m.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ForPayload returns the credentials to put in the task's PayloadMessage
// (roleCredentials, executionRoleCredentials; nil for a role the task
// lacks). The first call for a task issues them and starts refreshing;
// later calls (redeliveries, desired-status changes) return the current
// ones. A stopped task gets none and is untracked.
func (b *Broker) ForPayload(ctx context.Context, p Placement) (role, exec *api.IAMRoleCredentials, err error) {
	if p.Stopped {
		b.Untrack(p.TaskArn)
		return nil, nil, nil
	}
	get := func(roleArn, roleType string) (*api.IAMRoleCredentials, error) {
		if roleArn == "" {
			return nil, nil
		}
		if c := b.Current(p.TaskArn, roleType); c != nil && c.RoleArn == roleArn {
			return c, nil
		}
		req := Request{RoleArn: roleArn, TaskArn: p.TaskArn}
		if b.key != nil {
			req.CredentialsID = DeriveCredentialsID(b.key, p.TaskArn, roleType)
		}
		c, err := b.issuer.Issue(ctx, req)
		if err != nil {
			return nil, err
		}
		b.Track(Tracked{ClusterArn: p.ClusterArn, ContainerInstanceArn: p.ContainerInstanceArn,
			TaskArn: p.TaskArn, RoleType: roleType, Credentials: c})
		return c, nil
	}
	if role, err = get(p.TaskRoleArn, api.RoleTypeTaskApplication); err != nil {
		return nil, nil, fmt.Errorf("task %s role credentials: %w", p.TaskArn, err)
	}
	if exec, err = get(p.ExecutionRoleArn, api.RoleTypeTaskExecution); err != nil {
		return nil, nil, fmt.Errorf("task %s execution role credentials: %w", p.TaskArn, err)
	}
	return role, exec, nil
}

// ValidateTaskDefinition checks the task definition's roles against the
// declared ones (see Issuer.ValidateTaskDefinition).
func (b *Broker) ValidateTaskDefinition(taskRoleArn, executionRoleArn string) error {
	return b.issuer.ValidateTaskDefinition(taskRoleArn, executionRoleArn)
}
