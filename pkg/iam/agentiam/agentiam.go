// Package agentiam connects pkg/iam to the agent: it adds the credentials
// and task metadata variables to a task's containers, resolves credentials
// and metadata requests against the engine's task states (source address
// check, metadata v4 documents, stats), restores the credentials ids of
// recovered tasks after a restart, and runs the credentials server with its
// iptables route. It is imported by pkg/agent only.
package agentiam

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/iam"
)

// Engine is the part of *engine.Engine the lookups read.
type Engine interface {
	Tasks() []engine.TaskState
	Task(arn string) (engine.TaskState, bool)
}

var _ Engine = (*engine.Engine)(nil)

// Decorate adds to every container of def the variables the agent injects:
// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI when the task has a role, and the
// task metadata URIs with a fresh per-container id. The engine stores the
// first definition it receives, so the ids of a redelivered task are those
// of its first delivery.
func Decorate(def *engine.TaskDef, t *api.Task) error {
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

// Restore tells store the credentials id of every task the engine
// recovered that is not stopped: they answer 503 CredentialsUninitialized
// until ACS resends the credentials (never stored on disk).
func Restore(store *iam.Store, eng Engine) int {
	n := 0
	for _, t := range eng.Tasks() {
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

// TaskStopped forgets a stopped task's credentials: its ids stop working.
// Call it from the agent's state change hook for tasks that reached STOPPED.
func TaskStopped(store *iam.Store, taskArn string) { store.RemoveTask(taskArn) }

// addressOf is a bridge or awsvpc task's sandbox address.
func addressOf(t *engine.TaskState) (netip.Addr, bool) {
	if t.Def.NetworkMode == api.NetworkModeHost || t.IPv4 == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(t.IPv4)
	return a, err == nil
}
