package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/pkg/container"
)

// This file makes *Sandboxer the engine's Network (pkg/engine) on the
// neutral types of pkg/container: a task's sandbox is set up and torn down
// without a translating layer between the engine and this package. The
// handle the engine persists with the task is the Sandbox as JSON.

// SetupNetwork sets up the sandbox of a task (Setup with the task ID as
// owner) and returns it as the engine keeps it: the namespace, address,
// port bindings and, as the handle, the Sandbox record.
func (m *Sandboxer) SetupNetwork(ctx context.Context, req container.NetworkRequest) (container.NetworkResult, error) {
	sr := SetupRequest{Owner: req.TaskID, Mode: Mode(req.Mode)}
	for _, p := range req.Ports {
		sr.Ports = append(sr.Ports, PortRequest{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: Protocol(p.Protocol)})
	}
	sb, err := m.Setup(ctx, sr)
	if err != nil {
		return container.NetworkResult{}, err
	}
	handle, err := json.Marshal(sb)
	if err != nil {
		// Without a handle nothing could tear it down again: undo now.
		return container.NetworkResult{}, errors.Join(fmt.Errorf("encode sandbox: %w", err), m.Teardown(ctx, *sb))
	}
	res := container.NetworkResult{NetNSPath: sb.NetnsPath, IPv4: sb.IP, Handle: handle}
	for _, b := range sb.Bindings {
		res.Bindings = append(res.Bindings, container.PortBinding{ContainerPort: b.ContainerPort, HostPort: b.HostPort, Protocol: string(b.Protocol), BindIP: b.BindIP})
	}
	return res, nil
}

// TeardownNetwork tears down the sandbox whose record req.Handle holds
// (Teardown). Without a handle SetupNetwork never returned (a crash in the
// middle of it) and there is nothing to do: the sweep at start-up
// (CleanupHandles) removed what it made.
func (m *Sandboxer) TeardownNetwork(ctx context.Context, req container.NetworkRequest) error {
	if len(req.Handle) == 0 {
		return nil
	}
	var sb Sandbox
	if err := json.Unmarshal(req.Handle, &sb); err != nil {
		return fmt.Errorf("decode sandbox of task %s: %w", req.TaskID, err)
	}
	return m.Teardown(ctx, sb)
}

// CleanupHandles sweeps every sandbox, netns, rule and port of this
// Sandboxer that none of the live handles (SetupNetwork's, as persisted
// with the tasks) holds: Cleanup with the handles decoded. What cannot be
// removed now is retried in Run and reported by Pending.
func (m *Sandboxer) CleanupHandles(ctx context.Context, handles [][]byte) error {
	var live []Sandbox
	for _, h := range handles {
		var sb Sandbox
		if err := json.Unmarshal(h, &sb); err != nil {
			return fmt.Errorf("decode sandbox: %w", err)
		}
		live = append(live, sb)
	}
	_, err := m.Cleanup(ctx, live, nil)
	return err
}
