package agent

// This file is the seam through which pkg/agent/member (registration, the
// ACS session and the state change submitter, issue #7) runs beside an
// Agent. It only reads what Run has built.

import (
	"context"
	"slices"
	"strings"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/state"
)

// StateDB waits until Run has opened the state database and returns it. The
// database stays open until Run returns; callers must stop using it then.
// It fails (ErrStopped) when Run returned before opening it.
func (a *Agent) StateDB(ctx context.Context) (*state.DB, error) {
	if err := a.waitStarted(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db, nil
}

// ActiveTaskARNs returns the tasks the engine holds whose desired status is
// not STOPPED (nil before Run has built the engine).
func (a *Agent) ActiveTaskARNs() []string {
	a.mu.Lock()
	eng := a.eng
	a.mu.Unlock()
	if eng == nil {
		return nil
	}
	var out []string
	for _, t := range eng.Tasks() {
		if t.DesiredStatus != engine.TaskStopped {
			out = append(out, t.Def.ARN)
		}
	}
	return out
}

// TaskHealth returns the health of the running tasks' containers that have
// a health check, for the TCS session (registration.HealthSource), sorted
// by task ARN (containers in definition order), so an unchanged state gives
// an equal result.
func (a *Agent) TaskHealth() []*api.TaskHealth {
	a.mu.Lock()
	eng := a.eng
	a.mu.Unlock()
	if eng == nil {
		return nil
	}
	var out []*api.TaskHealth
	for _, t := range eng.Tasks() {
		if t.KnownStatus != engine.TaskRunning {
			continue
		}
		th := &api.TaskHealth{TaskArn: t.Def.ARN, ClusterArn: t.Def.Cluster,
			TaskDefinitionFamily: t.Def.Family, TaskDefinitionVersion: t.Def.Version}
		for i := range t.Def.Containers {
			d := &t.Def.Containers[i]
			if d.HealthCheck == nil {
				continue
			}
			for _, c := range t.Containers {
				if c.Name == d.Name {
					th.Containers = append(th.Containers, &api.ContainerHealth{ContainerName: c.Name, HealthStatus: c.Health.String()})
				}
			}
		}
		if len(th.Containers) > 0 {
			out = append(out, th)
		}
	}
	slices.SortFunc(out, func(a, b *api.TaskHealth) int { return strings.Compare(a.TaskArn, b.TaskArn) })
	return out
}
