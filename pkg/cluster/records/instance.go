package records

import (
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/scheduler"
)

// ResourceInt returns an INTEGER resource's value.
func ResourceInt(rs []types.Resource, name string) int64 {
	for _, r := range rs {
		if aws.ToString(r.Name) == name {
			if r.IntegerValue != 0 {
				return int64(r.IntegerValue)
			}
			return r.LongValue
		}
	}
	return 0
}

// resourcePorts returns a STRINGSET port resource's ports.
func resourcePorts(rs []types.Resource, name string) map[int]bool {
	out := map[int]bool{}
	for _, r := range rs {
		if aws.ToString(r.Name) != name {
			continue
		}
		for _, s := range r.StringSetValue {
			if p, err := strconv.Atoi(s); err == nil {
				out[p] = true
			}
		}
	}
	return out
}

// Capacity is what remains of the instance for placement: registered
// resources minus what its placed tasks use, and the host ports taken
// (reserved at registration or used by tasks). Only these members of the
// scheduler.Instance are set.
func (r *Instance) Capacity() *scheduler.Instance {
	reg := r.Instance.RegisteredResources
	c := &scheduler.Instance{
		Arn:             aws.ToString(r.Instance.ContainerInstanceArn),
		RemainingCPU:    ResourceInt(reg, "CPU") - r.UsedCPU,
		RemainingMemory: ResourceInt(reg, "MEMORY") - r.UsedMemory,
		UsedTCP:         resourcePorts(reg, "PORTS"),
		UsedUDP:         resourcePorts(reg, "PORTS_UDP"),
	}
	for _, p := range r.UsedTCP {
		c.UsedTCP[p] = true
	}
	for _, p := range r.UsedUDP {
		c.UsedUDP[p] = true
	}
	return c
}

// Take records a placed task's demand on the instance.
func (r *Instance) Take(d scheduler.Demand) {
	r.UsedCPU += d.CPU
	r.UsedMemory += d.Memory
	r.UsedTCP = append(r.UsedTCP, d.TCPPorts...)
	r.UsedUDP = append(r.UsedUDP, d.UDPPorts...)
}

// Release gives a stopped task's demand back.
func (r *Instance) Release(d scheduler.Demand) {
	r.UsedCPU = max(0, r.UsedCPU-d.CPU)
	r.UsedMemory = max(0, r.UsedMemory-d.Memory)
	r.UsedTCP = removePorts(r.UsedTCP, d.TCPPorts)
	r.UsedUDP = removePorts(r.UsedUDP, d.UDPPorts)
}

func removePorts(have, drop []int) []int {
	out := have[:0:0]
	dropped := map[int]int{}
	for _, p := range drop {
		dropped[p]++
	}
	for _, p := range have {
		if dropped[p] > 0 {
			dropped[p]--
			continue
		}
		out = append(out, p)
	}
	return out
}

// Status is the instance's status (ACTIVE, DRAINING, INACTIVE).
func (r *Instance) Status() string { return aws.ToString(r.Instance.Status) }
