// Package engine owns the ECS task and container state machine of the agent:
// it turns task definitions (pkg/api's task model) into neutral container
// specs (pkg/container), drives every container from its known status
// toward its desired status (one goroutine per task), accounts host
// resources, honours dependsOn and health checks, stops and cleans up
// tasks, recovers after an agent restart, removes unused images, and
// records every transition as a state change in the outbox of its Store.
//
// It declares the small interfaces it needs (interfaces.go), and the
// packages it calls implement them as they are, on the neutral types of
// pkg/container: pkg/runtime's *Runtime is ContainerRuntime and ImageStore,
// pkg/network's *Sandboxer is Network, pkg/state's *DB is Store,
// pkg/execrole's Secrets is SecretSource (and its RegistryLogins the
// runtime's pull login). pkg/agent builds them and hands them over once,
// so a task goes from the ACS payload to containerd's NewContainer through
// the engine and what it calls, never back through pkg/agent. Health leaves
// it neutral too (TaskHealth); pkg/registration maps it onto the wire.
//
// pkg/agent runs it; pkg/introspection and the agent's task roles read its
// task snapshots. Of Berth it imports pkg/api, pkg/container and pkg/logship
// (which log drivers exist and what options they take): it never talks to
// the endpoint (pkg/registration does) and never imports pkg/config,
// pkg/runtime or containerd.
package engine

import (
	"encoding/json"
	"fmt"
)

// ContainerStatus is the ordered lifecycle of one container. A container only
// moves forward: NONE → PULLED → CREATED → RUNNING → STOPPED.
type ContainerStatus int

// Container statuses, in order.
const (
	ContainerNone ContainerStatus = iota
	ContainerPulled
	ContainerCreated
	ContainerRunning
	ContainerStopped
)

var containerStatusNames = [...]string{"NONE", "PULLED", "CREATED", "RUNNING", "STOPPED"}

// String returns the ECS name of the status.
func (s ContainerStatus) String() string {
	if s < 0 || int(s) >= len(containerStatusNames) {
		return fmt.Sprintf("ContainerStatus(%d)", int(s))
	}
	return containerStatusNames[s]
}

// MarshalJSON writes the ECS name so persisted records stay readable.
func (s ContainerStatus) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads an ECS name.
func (s *ContainerStatus) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("container status: %w", err)
	}
	for i, n := range containerStatusNames {
		if n == name {
			*s = ContainerStatus(i)
			return nil
		}
	}
	return fmt.Errorf("container status: unknown %q", name)
}

// TaskStatus is the ordered lifecycle of a task as ECS reports it.
type TaskStatus int

// Task statuses, in order. TaskNone is reported as PENDING.
const (
	TaskNone TaskStatus = iota
	TaskPending
	TaskRunning
	TaskStopped
)

var taskStatusNames = [...]string{"NONE", "PENDING", "RUNNING", "STOPPED"}

// String returns the ECS name of the status.
func (s TaskStatus) String() string {
	if s < 0 || int(s) >= len(taskStatusNames) {
		return fmt.Sprintf("TaskStatus(%d)", int(s))
	}
	return taskStatusNames[s]
}

// Reported is the status sent to the endpoint: NONE is reported as PENDING.
func (s TaskStatus) Reported() string {
	if s == TaskNone {
		return "PENDING"
	}
	return s.String()
}

// MarshalJSON writes the ECS name.
func (s TaskStatus) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads an ECS name.
func (s *TaskStatus) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("task status: %w", err)
	}
	st, err := ParseTaskStatus(name)
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseTaskStatus reads a desired or known task status as ACS sends it.
func ParseTaskStatus(name string) (TaskStatus, error) {
	for i, n := range taskStatusNames {
		if n == name {
			return TaskStatus(i), nil
		}
	}
	return TaskNone, fmt.Errorf("task status: unknown %q", name)
}
