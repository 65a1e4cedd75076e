package engine

import (
	"time"

	"github.com/berth-dev/berth/pkg/api"
	"github.com/berth-dev/berth/pkg/container"
)

// Failure reasons, in the words ECS uses, so that operators and tools that
// match on them keep working.
const (
	ReasonEssentialExited = "Essential container in task exited"
	ReasonStoppedByUser   = "Task stopped by user"
	ReasonOOM             = "OutOfMemoryError: Container killed due to memory usage"
	prefixPull            = "CannotPullContainerError: "
	prefixCreate          = "CannotCreateContainerError: "
	prefixStart           = "CannotStartContainerError: "
	prefixResourceInit    = "ResourceInitializationError: "
	prefixDependency      = "DependencyError: "
)

// Condition is a dependsOn condition.
type Condition string

// dependsOn conditions ECS defines.
const (
	CondStart    Condition = "START"
	CondComplete Condition = "COMPLETE"
	CondSuccess  Condition = "SUCCESS"
	CondHealthy  Condition = "HEALTHY"
)

// Dependency says that a container waits for another one to reach Condition.
type Dependency struct {
	Container string    `json:"container"`
	Condition Condition `json:"condition"`
}

// HealthCheck is a Docker-format health check run by exec inside the container.
type HealthCheck struct {
	// Test is the Docker test: ["CMD", args...] or ["CMD-SHELL", "script"].
	Test        []string      `json:"test"`
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	Retries     int           `json:"retries"`
	StartPeriod time.Duration `json:"startPeriod"`
}

// MountPoint binds a task volume into a container.
type MountPoint struct {
	Volume        string `json:"volume"`
	ContainerPath string `json:"containerPath"`
	ReadOnly      bool   `json:"readOnly"`
}

// VolumeKind says where a task volume's data lives.
type VolumeKind string

// Volume kinds the engine supports.
const (
	VolumeHost         VolumeKind = "host"          // a host path (or an empty agent-managed dir)
	VolumeTaskScoped   VolumeKind = "docker-task"   // under the data dir, removed at clean-up
	VolumeSharedScoped VolumeKind = "docker-shared" // under the data dir, kept across tasks
)

// Volume is a task volume resolved to a host path when the task starts.
type Volume struct {
	Name          string     `json:"name"`
	Kind          VolumeKind `json:"kind"`
	SourcePath    string     `json:"sourcePath,omitempty"`
	Autoprovision bool       `json:"autoprovision,omitempty"`
}

// ContainerDef is what the task definition says about one container.
type ContainerDef struct {
	Name         string                  `json:"name"`
	Image        string                  `json:"image"`
	Essential    bool                    `json:"essential"`
	CPU          int64                   `json:"cpu"`
	MemoryMiB    int64                   `json:"memoryMiB"`
	Ports        []container.PortMapping `json:"ports,omitempty"`
	Mounts       []MountPoint            `json:"mounts,omitempty"`
	DependsOn    []Dependency            `json:"dependsOn,omitempty"`
	HealthCheck  *HealthCheck            `json:"healthCheck,omitempty"`
	StartTimeout time.Duration           `json:"startTimeout,omitempty"`
	StopTimeout  time.Duration           `json:"stopTimeout,omitempty"`
	// Secrets are the references of the container's secrets and of its
	// log driver's secretOptions; their values are fetched each time the
	// container is created and never stored.
	Secrets []container.SecretRef `json:"secrets,omitempty"`
	// Spec is the runtime spec without the per-run fields (ID, netns,
	// resolved mounts, log path), which the engine fills in at create.
	Spec container.Spec `json:"spec"`
}

// TaskDef is what the task definition says about the task.
type TaskDef struct {
	ARN         string         `json:"arn"`
	Family      string         `json:"family"`
	Version     string         `json:"version"`
	Cluster     string         `json:"cluster"`
	NetworkMode string         `json:"networkMode"`
	CPU         int64          `json:"cpu"`       // CPU units; 0 means the sum of containers
	MemoryMiB   int64          `json:"memoryMiB"` // 0 means the sum of containers
	Volumes     []Volume       `json:"volumes,omitempty"`
	Containers  []ContainerDef `json:"containers"`
	// Invalid is set when the definition cannot be honoured (an unsupported
	// field, a dependency cycle); the task is stopped with it as the reason.
	Invalid string `json:"invalid,omitempty"`
}

// step names a side-effecting operation that was started but not finished;
// it is persisted before the operation so that recovery can finish or roll
// back what a kill -9 interrupted.
type step string

const (
	stepNone     step = ""
	stepPulling  step = "pulling"
	stepCreating step = "creating"
	stepStarting step = "starting"
	stepStopping step = "stopping"
)

// Step describes one side-effecting operation for Options.StepHook.
type Step struct {
	TaskARN string
	// Container is empty for task-level steps (network).
	Container string
	// Name is pull, create, start, stop, network-setup or network-teardown.
	Name string
	// Done is false before the operation and true after it returned
	// (before its result is recorded).
	Done bool
	Err  error
}

// ContainerState is the known state of one container.
type ContainerState struct {
	Name          string                 `json:"name"`
	KnownStatus   ContainerStatus        `json:"knownStatus"`
	DesiredStatus ContainerStatus        `json:"desiredStatus"`
	RuntimeID     string                 `json:"runtimeId,omitempty"`
	ImageDigest   string                 `json:"imageDigest,omitempty"`
	ImageRef      string                 `json:"imageRef,omitempty"` // normalised, as pulled
	PID           int                    `json:"pid,omitempty"`
	ExitCode      *int                   `json:"exitCode,omitempty"`
	Reason        string                 `json:"reason,omitempty"`
	Health        container.HealthStatus `json:"health"`
	Bindings      []api.NetworkBinding   `json:"bindings,omitempty"`
	StartedAt     time.Time              `json:"startedAt,omitempty"`
	FinishedAt    time.Time              `json:"finishedAt,omitempty"`
	LogPath       string                 `json:"logPath,omitempty"`
	Step          step                   `json:"step,omitempty"`
	// Retries counts the failed attempts of the container's current
	// operation (a pull, create or start that could not reach the runtime,
	// a stop that failed); RetryError is the last failure. Both are reset
	// when the operation succeeds, so a non-zero Retries means "waiting to
	// try again" (introspection and /metrics show it).
	Retries    int    `json:"retries,omitempty"`
	RetryError string `json:"retryError,omitempty"`
}

// TaskState is the whole persisted record of one task: its definition and
// everything known about it. The task's goroutine is its only writer.
type TaskState struct {
	Def                TaskDef              `json:"def"`
	DesiredStatus      TaskStatus           `json:"desiredStatus"`
	KnownStatus        TaskStatus           `json:"knownStatus"`
	StoppedReason      string               `json:"stoppedReason,omitempty"`
	Admitted           bool                 `json:"admitted,omitempty"`
	NetworkReady       bool                 `json:"networkReady,omitempty"`
	NetworkStep        step                 `json:"networkStep,omitempty"`
	NetNSPath          string               `json:"netnsPath,omitempty"`
	NetHandle          []byte               `json:"netHandle,omitempty"`
	IPv4               string               `json:"ipv4,omitempty"`
	Bindings           []api.NetworkBinding `json:"bindings,omitempty"`
	VolumePaths        map[string]string    `json:"volumePaths,omitempty"`
	PullStartedAt      time.Time            `json:"pullStartedAt,omitempty"`
	PullStoppedAt      time.Time            `json:"pullStoppedAt,omitempty"`
	ExecutionStoppedAt time.Time            `json:"executionStoppedAt,omitempty"`
	StoppedAt          time.Time            `json:"stoppedAt,omitempty"`
	Containers         []*ContainerState    `json:"containers"`
	// CleanupRetries counts clean-ups that failed (CleanupError is the
	// last failure). The record is kept until a clean-up succeeds, so a
	// clean-up pending at an agent restart is retried by the next agent.
	CleanupRetries int    `json:"cleanupRetries,omitempty"`
	CleanupError   string `json:"cleanupError,omitempty"`
}

func (t *TaskState) container(name string) *ContainerState {
	for _, c := range t.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (t *TaskState) def(name string) *ContainerDef {
	for i := range t.Def.Containers {
		if t.Def.Containers[i].Name == name {
			return &t.Def.Containers[i]
		}
	}
	return nil
}
