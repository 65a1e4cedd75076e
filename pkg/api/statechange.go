package api

import "time"

// ChangeKind says whether a state change is about a task or a container.
type ChangeKind string

// State change kinds.
const (
	ChangeTask      ChangeKind = "task"
	ChangeContainer ChangeKind = "container"
)

// NetworkBinding is a host port bound for a container: what the task
// records and a container state change reports (networkBindings).
type NetworkBinding struct {
	ContainerPort uint16 `json:"containerPort"`
	HostPort      uint16 `json:"hostPort"`
	Protocol      string `json:"protocol"`
	BindIP        string `json:"bindIP"`
}

// StateChange is one task or container transition the agent reports to the
// endpoint (SubmitTaskStateChange or SubmitContainerStateChange): pkg/engine
// makes it, pkg/state keeps it in the outbox in the transaction of the state
// it describes, and pkg/registration submits it. The JSON form is the
// outbox's.
type StateChange struct {
	// Seq is the entry's position in the outbox, assigned by
	// state.Tx.AppendStateChange; it only grows, across restarts too.
	Seq                uint64           `json:"seq"`
	Kind               ChangeKind       `json:"kind"`
	TaskARN            string           `json:"taskArn"`
	Cluster            string           `json:"cluster,omitempty"`
	Status             string           `json:"status"`
	Reason             string           `json:"reason,omitempty"`
	ContainerName      string           `json:"containerName,omitempty"`
	RuntimeID          string           `json:"runtimeId,omitempty"`
	ImageDigest        string           `json:"imageDigest,omitempty"`
	ExitCode           *int             `json:"exitCode,omitempty"`
	NetworkBindings    []NetworkBinding `json:"networkBindings,omitempty"`
	HealthStatus       string           `json:"healthStatus,omitempty"`
	PullStartedAt      time.Time        `json:"pullStartedAt,omitzero"`
	PullStoppedAt      time.Time        `json:"pullStoppedAt,omitzero"`
	ExecutionStoppedAt time.Time        `json:"executionStoppedAt,omitzero"`
	At                 time.Time        `json:"at,omitzero"`
}
