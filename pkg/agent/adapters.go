package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/pkg/introspection"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/state"
)

// pendingCleanup maps what the network retries onto the introspection
// API's /v1/cleanup.
func pendingCleanup(nw *network.Sandboxer) func() []introspection.PendingCleanup {
	return func() []introspection.PendingCleanup {
		var out []introspection.PendingCleanup
		for _, l := range nw.Pending() {
			out = append(out, introspection.PendingCleanup{Resource: l.Resource, Task: l.Owner, Error: l.Err,
				Attempts: l.Attempts, Since: l.Since, NextAttempt: l.NextAttempt})
		}
		return out
	}
}

// portStore persists the network's port allocations in the state database.
type portStore struct {
	db *state.DB
}

var _ network.PortStore = portStore{}

func (p portStore) LoadPorts() ([]network.Allocation, error) {
	in, err := p.db.LoadPorts()
	if err != nil {
		return nil, err
	}
	out := make([]network.Allocation, 0, len(in))
	for _, a := range in {
		out = append(out, network.Allocation{Owner: a.Owner, Protocol: network.Protocol(a.Protocol), HostPort: a.HostPort})
	}
	return out, nil
}

func (p portStore) SavePorts(in []network.Allocation) error {
	out := make([]state.PortAllocation, 0, len(in))
	for _, a := range in {
		out = append(out, state.PortAllocation{Owner: a.Owner, Protocol: string(a.Protocol), HostPort: a.HostPort})
	}
	return p.db.SavePorts(out)
}

// logRemover deletes a container's json-file log and its rotated files.
type logRemover struct{}

func (logRemover) RemoveLogs(ctx context.Context, path string) error {
	// Rotated files are path.1, path.2, ... (see logs.Config).
	rotated, err := filepath.Glob(path + ".*")
	if err != nil {
		return fmt.Errorf("list rotated logs of %s: %w", path, err)
	}
	var errs []error
	for _, p := range append(rotated, path) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
