package agent

// This file is the seam through which pkg/agent/member (registration, the
// ACS session and the state change submitter, issue #7) runs beside an
// Agent. It only reads what Run has built.

import (
	"context"

	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/state"
)

// StateDB waits until Run has opened the state database and returns it. The
// database stays open until Run returns; callers must stop using it then.
func (a *Agent) StateDB(ctx context.Context) (*state.DB, error) {
	select {
	case <-a.started:
	case <-ctx.Done():
		return nil, ctx.Err()
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
