package engine

import (
	"context"
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

// Runtime is the part of the container runtime the engine drives;
// pkg/runtime's *Runtime implements it (and Waiter, Execer, Lister).
type Runtime interface {
	// Pull fetches ref for a task; container.PullFor(ctx) names the task,
	// so the runtime can log in with the task's execution role.
	Pull(ctx context.Context, ref string) (container.Image, error)
	Create(ctx context.Context, spec container.Spec) error
	// Start starts the created container's process and returns its PID.
	Start(ctx context.Context, id string) (int, error)
	// Stop sends the stop signal, waits up to timeout, then kills; it
	// returns once the process is gone. A container with no process is done.
	Stop(ctx context.Context, id string, timeout time.Duration) error
	// Remove deletes the container, its process record and its snapshot.
	Remove(ctx context.Context, id string) error
}

// Waiter blocks until a started container's process exits. It is called
// again after an agent restart for a container found running.
type Waiter interface {
	Wait(ctx context.Context, id string) (container.Exit, error)
}

// Execer runs a health-check command inside a running container and returns
// its exit code.
type Execer interface {
	Exec(ctx context.Context, id string, args []string, timeout time.Duration) (int, error)
}

// Lister lists the containers carrying a label (recovery).
type Lister interface {
	List(ctx context.Context, labelKey string) ([]container.Observed, error)
}

// TaskCgroupRemover removes a task's cgroup (container.TaskCgroup) once
// the task's containers are removed; pkg/runtime's *Runtime implements it.
// A cgroup that does not exist is done. The engine calls it at the task's
// clean-up when the runtime has it.
type TaskCgroupRemover interface {
	RemoveTaskCgroup(ctx context.Context, name string) error
}

// ContainerRuntime is everything the engine needs from the runtime.
type ContainerRuntime interface {
	Runtime
	Waiter
	Execer
	Lister
}

// Network sets up and tears down a task's network namespace and host
// ports; pkg/network's *Sandboxer implements it as it is, on the neutral
// types of pkg/container.
type Network interface {
	SetupNetwork(ctx context.Context, req container.NetworkRequest) (container.NetworkResult, error)
	// TeardownNetwork removes what SetupNetwork made for the task; it is
	// idempotent and also runs when SetupNetwork failed half-way.
	TeardownNetwork(ctx context.Context, req container.NetworkRequest) error
}

// Store persists task records and the outbox of state changes; pkg/state's
// *DB implements it as it is (a local database: no call takes a context).
type Store interface {
	// SaveTask writes the record and appends the changes to the outbox in
	// one transaction.
	SaveTask(arn string, record []byte, changes []api.StateChange) error
	// DeleteTask removes the record (after clean-up); the outbox is kept.
	DeleteTask(arn string) error
	// TaskRecords returns every stored record.
	TaskRecords() ([][]byte, error)
}

// LogRemover deletes a container's logs at clean-up.
type LogRemover interface {
	RemoveLogs(ctx context.Context, path string) error
}

// ContainerLog is what a LogShipper needs to ship one container's json-file
// to the destination of its logConfiguration.
type ContainerLog struct {
	// ID is the runtime ID; LogPath the container's json-file.
	ID, LogPath string
	Log         container.LogConfig
	// Name is the task definition's container name; Image its image.
	Name, Image string
	TaskARN     string
	Family      string
	Cluster     string
	Labels      map[string]string
	// Env is the container's environment as KEY=value.
	Env []string
}

// LogShipper ships container logs to remote drivers (awslogs, journald,
// syslog, fluentd) from the json-file every container writes; pkg/agent
// implements it with pkg/logship. Its calls never block a container's
// start or stop for long: Start only starts a background tail, Drain is
// bounded by its context.
type LogShipper interface {
	// Start begins shipping, or resumes it after an agent restart from
	// the persisted position. Drivers that ship nothing (json-file,
	// none) make it a no-op.
	Start(ctx context.Context, c ContainerLog) error
	// Drain ships what the exited container's log still holds, until ctx
	// ends, and stops the shipper (its position stays).
	Drain(ctx context.Context, id string) error
	// Remove stops the container's shipper and forgets its position; it
	// runs before the container's logs are deleted.
	Remove(id string) error
}

// SecretSource fetches the values of a task's secrets the way the ECS
// agent does: with the task's execution role, from SSM Parameter Store or
// Secrets Manager (pkg/execrole's Secrets implements it). Its errors name
// the secret and never carry a value.
type SecretSource interface {
	// Fetch returns the values of refs, in their order.
	Fetch(ctx context.Context, taskARN string, refs []container.SecretRef) ([]string, error)
}
