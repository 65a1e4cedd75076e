package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/engine"
	"github.com/berth-dev/berth/pkg/introspection"
	"github.com/berth-dev/berth/pkg/network"
	"github.com/berth-dev/berth/pkg/state"
)

// networkAdapter maps the engine's network interface onto pkg/network; the
// handle the engine persists is the network.Sandbox as JSON.
type networkAdapter struct {
	m *network.Sandboxer
}

var _ engine.Network = networkAdapter{}

func (n networkAdapter) Setup(ctx context.Context, req engine.NetworkRequest) (engine.NetworkResult, error) {
	sr := network.SetupRequest{Owner: req.TaskID, Mode: network.Mode(req.Mode)}
	for _, p := range req.Ports {
		sr.Ports = append(sr.Ports, network.PortRequest{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: network.Protocol(p.Protocol)})
	}
	sb, err := n.m.Setup(ctx, sr)
	if err != nil {
		return engine.NetworkResult{}, err
	}
	handle, err := json.Marshal(sb)
	if err != nil {
		// Without a handle nothing could tear it down again: undo now.
		return engine.NetworkResult{}, errors.Join(fmt.Errorf("encode sandbox: %w", err), n.m.Teardown(ctx, *sb))
	}
	res := engine.NetworkResult{NetNSPath: sb.NetnsPath, IPv4: sb.IP, Handle: handle}
	for _, b := range sb.Bindings {
		res.Bindings = append(res.Bindings, api.NetworkBinding{ContainerPort: b.ContainerPort, HostPort: b.HostPort, Protocol: string(b.Protocol), BindIP: b.BindIP})
	}
	return res, nil
}

func (n networkAdapter) Teardown(ctx context.Context, req engine.NetworkRequest) error {
	if len(req.Handle) == 0 {
		// Setup never returned (a crash in the middle of it); the sweep at
		// start-up (network.Cleanup) removed what it made.
		return nil
	}
	var sb network.Sandbox
	if err := json.Unmarshal(req.Handle, &sb); err != nil {
		return fmt.Errorf("decode sandbox of task %s: %w", req.TaskID, err)
	}
	return n.m.Teardown(ctx, sb)
}

// cleanup sweeps every sandbox, netns, rule and port of this agent that no
// live task holds. What cannot be removed now does not stop the agent: the
// network retries it in the background and reports it (pending).
func (n networkAdapter) cleanup(ctx context.Context, handles [][]byte) error {
	var live []network.Sandbox
	for _, h := range handles {
		var sb network.Sandbox
		if err := json.Unmarshal(h, &sb); err != nil {
			return fmt.Errorf("decode sandbox: %w", err)
		}
		live = append(live, sb)
	}
	_, err := n.m.Cleanup(ctx, live, nil)
	return err
}

// pending maps what the network retries onto the introspection API's
// /v1/cleanup.
func (n networkAdapter) pending() []introspection.PendingCleanup {
	var out []introspection.PendingCleanup
	for _, l := range n.m.Pending() {
		out = append(out, introspection.PendingCleanup{Resource: l.Resource, Task: l.Owner, Error: l.Err,
			Attempts: l.Attempts, Since: l.Since, NextAttempt: l.NextAttempt})
	}
	return out
}

// storeAdapter gives the engine its Store on pkg/state: the task records and
// the outbox of state changes (api.StateChange, one type for both).
type storeAdapter struct {
	db *state.DB
}

var _ engine.Store = storeAdapter{}

func (s storeAdapter) SaveTask(ctx context.Context, arn string, record []byte, changes []api.StateChange) error {
	return s.db.SaveTask(arn, record, changes)
}

func (s storeAdapter) DeleteTask(ctx context.Context, arn string) error { return s.db.DeleteTask(arn) }

func (s storeAdapter) LoadTasks(ctx context.Context) ([][]byte, error) {
	entries, err := s.db.Tasks()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Record)
	}
	return out, nil
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
