package engine

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is what the engine's dependencies return (wrapped) when the
// thing asked for does not exist; the engine treats it as "already done" when
// removing or stopping.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is what the runtime returns (wrapped) when it could not be
// reached at all, as opposed to refusing the request: containerd is down or
// restarting. The engine waits and retries the operation with backoff
// instead of failing the task.
var ErrUnavailable = errors.New("container runtime unavailable")

// ErrExists is what the runtime's Create returns (wrapped) when a container
// with the ID already exists. The IDs are deterministic, so for a create
// that is retried it is the container an earlier attempt made.
var ErrExists = errors.New("already exists")

// Ulimit is one rlimit.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Tmpfs is one tmpfs mount with Docker-style options ("rw,size=16m").
type Tmpfs struct {
	Path    string `json:"path"`
	Options string `json:"options,omitempty"`
}

// Mount is a bind mount resolved to a host path.
type Mount struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// LogConfig is the container's log configuration as the task asked for it.
type LogConfig struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// ContainerSpec is the neutral description of one container the engine hands
// to its Runtime; pkg/agent maps it onto pkg/runtime's spec. Empty fields
// mean "the image's default" or "none".
type ContainerSpec struct {
	ID                string            `json:"id"`
	Image             string            `json:"image"`
	Entrypoint        []string          `json:"entrypoint,omitempty"`
	Command           []string          `json:"command,omitempty"`
	Env               []string          `json:"env,omitempty"`
	User              string            `json:"user,omitempty"`
	WorkingDir        string            `json:"workingDir,omitempty"`
	Hostname          string            `json:"hostname,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	CPUShares         int64             `json:"cpuShares,omitempty"`
	MemoryLimit       int64             `json:"memoryLimit,omitempty"`       // bytes
	MemoryReservation int64             `json:"memoryReservation,omitempty"` // bytes
	ShmSize           int64             `json:"shmSize,omitempty"`           // bytes
	Ulimits           []Ulimit          `json:"ulimits,omitempty"`
	CapAdd            []string          `json:"capAdd,omitempty"`
	CapDrop           []string          `json:"capDrop,omitempty"`
	Privileged        bool              `json:"privileged,omitempty"`
	ReadonlyRootfs    bool              `json:"readonlyRootfs,omitempty"`
	Init              bool              `json:"init,omitempty"`
	Tmpfs             []Tmpfs           `json:"tmpfs,omitempty"`
	DNS               []string          `json:"dns,omitempty"`
	DNSSearch         []string          `json:"dnsSearch,omitempty"`
	ExtraHosts        []string          `json:"extraHosts,omitempty"` // "host:ip"
	Mounts            []Mount           `json:"mounts,omitempty"`
	StopSignal        string            `json:"stopSignal,omitempty"`
	// NetNSPath is the network namespace to join; empty with HostNetwork
	// false means a private namespace with loopback only.
	NetNSPath   string    `json:"netnsPath,omitempty"`
	HostNetwork bool      `json:"hostNetwork,omitempty"`
	LogPath     string    `json:"logPath,omitempty"`
	Log         LogConfig `json:"log,omitempty"`
}

// Image is what a pull produced.
type Image struct {
	Ref    string
	Digest string
}

// Exit is how a container's process ended.
type Exit struct {
	Code     int
	At       time.Time
	OOMKill  bool
	Signaled bool
}

// Observed is a container as the runtime sees it, used by recovery.
type Observed struct {
	ID      string
	Labels  map[string]string
	Running bool
	// Exited is set when the container has a task that ended; Exit holds
	// its status. Neither set means created and never started.
	Exited bool
	Exit   Exit
	PID    int
}

// Runtime is the part of the container runtime the engine drives.
type Runtime interface {
	// Pull fetches ref for a task; PullTask(ctx) names the task, so the
	// runtime can log in with the task's execution role.
	Pull(ctx context.Context, ref string) (Image, error)
	Create(ctx context.Context, spec ContainerSpec) error
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
	Wait(ctx context.Context, id string) (Exit, error)
}

// Execer runs a health-check command inside a running container and returns
// its exit code.
type Execer interface {
	Exec(ctx context.Context, id string, args []string, timeout time.Duration) (int, error)
}

// Lister lists the containers carrying a label (recovery).
type Lister interface {
	List(ctx context.Context, labelKey string) ([]Observed, error)
}

// ContainerRuntime is everything the engine needs from the runtime.
type ContainerRuntime interface {
	Runtime
	Waiter
	Execer
	Lister
}

// NetworkRequest describes the network a task needs.
type NetworkRequest struct {
	TaskID string
	// Mode is bridge, host, none or awsvpc.
	Mode  string
	Ports []PortMapping
	// Handle is what Setup returned in NetworkResult.Handle, persisted with
	// the task; Teardown gets it back (empty when Setup never returned, e.g.
	// after a crash in the middle of it).
	Handle []byte
}

// NetworkResult is what Setup produced.
type NetworkResult struct {
	NetNSPath string
	IPv4      string
	Bindings  []PortBinding
	// Handle is opaque to the engine: the network's record of what it made.
	Handle []byte
}

// Network sets up and tears down a task's network namespace and host ports.
type Network interface {
	Setup(ctx context.Context, req NetworkRequest) (NetworkResult, error)
	// Teardown removes what Setup made for the task; it is idempotent and
	// also runs when Setup failed half-way.
	Teardown(ctx context.Context, req NetworkRequest) error
}

// Store persists task records and the outbox of state changes.
type Store interface {
	// SaveTask writes the record and appends the changes to the outbox in
	// one transaction.
	SaveTask(ctx context.Context, arn string, record []byte, changes []StateChange) error
	// DeleteTask removes the record (after clean-up); the outbox is kept.
	DeleteTask(ctx context.Context, arn string) error
	// LoadTasks returns every stored record.
	LoadTasks(ctx context.Context) ([][]byte, error)
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
	Log         LogConfig
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
// Secrets Manager (pkg/agent implements it). Its errors name the secret
// and never carry a value.
type SecretSource interface {
	// Fetch returns the values of refs, in their order.
	Fetch(ctx context.Context, taskARN string, refs []SecretRef) ([]string, error)
}

// pullTaskKey is the context key of the task ARN a Pull is made for.
type pullTaskKey struct{}

// WithPullTask returns ctx naming taskArn as the task a Pull is made for.
// Pull keeps its narrow signature; the task is an optional hint that only
// registry login uses.
func WithPullTask(ctx context.Context, taskArn string) context.Context {
	return context.WithValue(ctx, pullTaskKey{}, taskArn)
}

// PullTask returns the task ARN set by WithPullTask, or "".
func PullTask(ctx context.Context) string {
	arn, _ := ctx.Value(pullTaskKey{}).(string)
	return arn
}
