// Package records is the cluster endpoint's schema for the ECS API: the
// typed records kept in the store (clusters, task definition families and
// revisions, container instances, tasks, services), the bucket and key each
// lives under, the ECS ARN format and how references (names, ids, ARNs)
// resolve to keys, and the changes to a record that every writer applies
// the same way (a task's status moving forward, an instance's used
// resources, a service's events and deployments, load balancer targets
// registered, deregistered and their health).
//
// The records hold the AWS SDK's ECS types, encoded with encoding/json (Go
// field names), plus what the endpoint needs beside them; field names are
// the stored format and stay stable. Every part of the endpoint that reads
// or writes ECS state imports this package: the ECS API (ecsapi), task
// launching (launch), the service controller (servicectl) and the ACS
// session server (acs). It imports store (never a storage engine),
// scheduler (a task's resource demand) and pkg/api/arn.
package records

import (
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/scheduler"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// The buckets of the ECS records. Keys are built by the *Key functions.
const (
	Clusters        store.Bucket = "clusters"
	Families        store.Bucket = "families"
	TaskDefinitions store.Bucket = "task-definitions"
	Instances       store.Bucket = "container-instances"
	Tasks           store.Bucket = "tasks"
	Services        store.Bucket = "services"
)

// Buckets lists the buckets of the ECS records.
func Buckets() []store.Bucket {
	return append([]store.Bucket{Clusters, Families, TaskDefinitions, Instances, Tasks, Services}, IndexBuckets()...)
}

// Cluster is stored in Clusters under the cluster name.
type Cluster struct {
	Cluster types.Cluster
}

// Family is stored in Families under the family name.
type Family struct {
	Family         string
	LatestRevision int32
}

// TaskDefinition is stored in TaskDefinitions under TaskDefinitionKey.
type TaskDefinition struct {
	TaskDefinition types.TaskDefinition
	Tags           []types.Tag
}

// Instance is a container instance, stored in Instances under InstanceKey.
type Instance struct {
	Instance types.ContainerInstance
	Cluster  string
	// AgentKeyID is the access key that registered the instance; an agent
	// key may act only on instances bound to it.
	AgentKeyID string
	// Used resources of tasks placed here and not yet STOPPED.
	UsedCPU    int64
	UsedMemory int64
	UsedTCP    []int
	UsedUDP    []int
}

// Task is stored in Tasks under TaskKey.
type Task struct {
	Task    types.Task
	Cluster string
	// Demand is what the task holds on its instance until Released.
	Demand   scheduler.Demand
	Released bool
	// ServiceSawRunning and ServiceSawStop record that the service
	// controller has counted the task's start and stop (launch failures,
	// backoff), so each is counted once.
	ServiceSawRunning bool `json:",omitempty"`
	ServiceSawStop    bool `json:",omitempty"`
	// Targets are the load balancer targets the service controller
	// registered the task as; TargetsDeregistered is set once they were
	// deregistered, and Deactivating while they drain before the task is
	// told to stop.
	Targets             []TaskTarget  `json:",omitempty"`
	TargetsDeregistered bool          `json:",omitempty"`
	Deactivating        *Deactivation `json:",omitempty"`
	// ClientToken is the RunTask clientToken that created the task and
	// RequestHash the digest of that request's other members: a retry with
	// the token gets the same tasks while they are kept.
	ClientToken string `json:",omitempty"`
	RequestHash string `json:",omitempty"`
}

// Service is stored in Services under ServiceKey.
type Service struct {
	Service types.Service
	Cluster string
	// LastCompleted is the task definition of the last deployment that
	// completed: a circuit breaker with rollback deploys it again.
	LastCompleted string
	// LaunchFailures counts tasks in a row that stopped before RUNNING;
	// launches wait BackoffUntil (unix nanoseconds) when it is not zero.
	LaunchFailures int
	BackoffUntil   int64
	// Steady is set once the steady-state event was written for the
	// current state, so it is written once per arrival.
	Steady bool
	// History is the service's deployments, newest first, at most
	// MaxDeploymentHistory: what ListServiceDeployments and
	// DescribeServiceRevisions answer from.
	History []DeploymentRecord `json:",omitempty"`
	// ClientToken is the CreateService clientToken that created it.
	ClientToken string `json:",omitempty"`
}
