// Package scheduler holds the cluster endpoint's placement logic: the
// placement pipeline (resources, required attributes, constraints, then
// ordered strategies), the cluster query language used by memberOf
// constraints and ListContainerInstances filters, and the choice of tasks
// to stop on scale-in. It is pure logic over plain values (no store, no ECS
// types, no other Berth package); pkg/cluster/launch builds its inputs from
// the records, and it is imported by launch, the ECS API (ecsapi: StartTask's
// checks, ListContainerInstances filters, request validation), the service
// controller (servicectl: scale-in) and records (a task's Demand).
package scheduler

import (
	"sort"
	"time"
)

// Failure reasons, as ECS reports them in RunTask's failures.
const (
	ReasonCPU    = "RESOURCE:CPU"
	ReasonMemory = "RESOURCE:MEMORY"
	ReasonPorts  = "RESOURCE:PORTS"
	ReasonUDP    = "RESOURCE:PORTS_UDP"
	// ReasonAgent: the instance's agent holds no session.
	ReasonAgent = "AGENT"
	// ReasonAttribute: the instance lacks an attribute the task requires.
	ReasonAttribute = "ATTRIBUTE"
	// ReasonMemberOf and ReasonDistinct: a placement constraint refused it.
	ReasonMemberOf = "MemberOf placement constraint unsatisfied."
	ReasonDistinct = "DistinctInstance placement constraint unsatisfied."
)

// Demand is what one task needs on an instance.
type Demand struct {
	CPU    int64 // CPU units
	Memory int64 // MiB
	// TCPPorts and UDPPorts are static host ports; dynamic ports (hostPort 0)
	// are chosen by the agent and need no check here.
	TCPPorts []int
	UDPPorts []int
}

// Instance is one placement candidate's remaining capacity. Placing a task
// updates it, so several tasks of one request see each other.
type Instance struct {
	Arn             string
	RemainingCPU    int64
	RemainingMemory int64
	// UsedTCP and UDPPorts hold reserved and allocated host ports.
	UsedTCP map[int]bool
	UsedUDP map[int]bool

	// What the query language and the strategies look at.
	ID             string // container instance id
	EC2InstanceID  string // ec2InstanceId subject and spread host; ID when empty
	Attributes     map[string]string
	AgentConnected bool
	AgentVersion   string
	RegisteredAt   time.Time
	RunningTasks   int
	// Groups counts the instance's unstopped tasks per task group; spread
	// and distinctInstance count within the request's group.
	Groups map[string]int
	// Unavailable is a failure reason ("AGENT") that rules the instance out
	// before resources are looked at.
	Unavailable string
}

// Host is the instance's host identity (ec2InstanceId, else its id).
func (in *Instance) Host() string {
	if in.EC2InstanceID != "" {
		return in.EC2InstanceID
	}
	return in.ID
}

// Misfit says why a task did not fit on one instance.
type Misfit struct {
	Arn    string
	Reason string
}

// Fits returns "" if d fits on in, or the first resource that is short,
// checked in ECS's order: CPU, memory, ports.
func Fits(in *Instance, d Demand) string {
	switch {
	case d.CPU > in.RemainingCPU:
		return ReasonCPU
	case d.Memory > in.RemainingMemory:
		return ReasonMemory
	}
	for _, p := range d.TCPPorts {
		if in.UsedTCP[p] {
			return ReasonPorts
		}
	}
	for _, p := range d.UDPPorts {
		if in.UsedUDP[p] {
			return ReasonUDP
		}
	}
	return ""
}

// Take subtracts d from in. The caller has checked Fits.
func Take(in *Instance, d Demand) {
	in.RemainingCPU -= d.CPU
	in.RemainingMemory -= d.Memory
	if in.UsedTCP == nil {
		in.UsedTCP = map[int]bool{}
	}
	if in.UsedUDP == nil {
		in.UsedUDP = map[int]bool{}
	}
	for _, p := range d.TCPPorts {
		in.UsedTCP[p] = true
	}
	for _, p := range d.UDPPorts {
		in.UsedUDP[p] = true
	}
}

// Release gives d back to in.
func Release(in *Instance, d Demand) {
	in.RemainingCPU += d.CPU
	in.RemainingMemory += d.Memory
	for _, p := range d.TCPPorts {
		delete(in.UsedTCP, p)
	}
	for _, p := range d.UDPPorts {
		delete(in.UsedUDP, p)
	}
}

// FirstFit places d on the first instance (in the given order) that has room
// and returns its index, having taken the resources. When none fits it
// returns -1 and why each instance was refused.
func FirstFit(instances []*Instance, d Demand) (int, []Misfit) {
	var misfits []Misfit
	for i, in := range instances {
		if r := Fits(in, d); r != "" {
			misfits = append(misfits, Misfit{Arn: in.Arn, Reason: r})
			continue
		}
		Take(in, d)
		return i, nil
	}
	return -1, misfits
}

// SortedPorts returns the keys of a port set in ascending order.
func SortedPorts(set map[int]bool) []int {
	out := make([]int, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}
