package launch

import (
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/scheduler"
)

// TestDemand pins what a task holds on its instance, whoever launches it:
// task-level sizes win over the containers' sum, a reservation over the
// hard limit, overrides over the definition, and only static host ports
// (never awsvpc's) are taken.
func TestDemand(t *testing.T) {
	web := types.ContainerDefinition{Name: aws.String("web"), Cpu: 256, Memory: aws.Int32(512), MemoryReservation: aws.Int32(128),
		PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(8080)},
			{ContainerPort: aws.Int32(53), HostPort: aws.Int32(5353), Protocol: types.TransportProtocolUdp},
			{ContainerPort: aws.Int32(81), HostPort: aws.Int32(0)}}}
	side := types.ContainerDefinition{Name: aws.String("side"), Cpu: 10, Memory: aws.Int32(64)}
	td := func(mode types.NetworkMode, cpu, mem *string) *types.TaskDefinition {
		return &types.TaskDefinition{NetworkMode: mode, Cpu: cpu, Memory: mem, ContainerDefinitions: []types.ContainerDefinition{web, side}}
	}
	cases := []struct {
		name string
		td   *types.TaskDefinition
		ov   *types.TaskOverride
		want scheduler.Demand
	}{
		{"containers summed, reservation first", td(types.NetworkModeBridge, nil, nil), nil,
			scheduler.Demand{CPU: 266, Memory: 192, TCPPorts: []int{8080}, UDPPorts: []int{5353}}},
		{"task-level sizes win", td(types.NetworkModeBridge, aws.String("1 vCPU"), aws.String("2 GB")), nil,
			scheduler.Demand{CPU: 1024, Memory: 2048, TCPPorts: []int{8080}, UDPPorts: []int{5353}}},
		{"awsvpc takes no host port", td(types.NetworkModeAwsvpc, nil, nil), nil, scheduler.Demand{CPU: 266, Memory: 192}},
		{"overrides win", td(types.NetworkModeBridge, aws.String("512"), nil),
			&types.TaskOverride{Cpu: aws.String("2048"), ContainerOverrides: []types.ContainerOverride{{Name: aws.String("side"), Memory: aws.Int32(100)}}},
			scheduler.Demand{CPU: 2048, Memory: 228, TCPPorts: []int{8080}, UDPPorts: []int{5353}}},
	}
	for _, c := range cases {
		if got := Demand(c.td, c.ov); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Demand = %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestRequest: the definition's and the caller's constraints add up (and
// are refused past the limit, as InvalidParameterException), the caller's
// strategies replace the default, required attributes come along.
func TestRequest(t *testing.T) {
	td := &types.TaskDefinition{
		PlacementConstraints: []types.TaskDefinitionPlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:ecs.os-type == linux")}},
		RequiresAttributes:   []types.Attribute{{Name: aws.String("com.amazonaws.ecs.capability.docker-remote-api.1.19")}},
	}
	def := []scheduler.Strategy{{Type: "random"}}
	r, err := Request(td, scheduler.Demand{CPU: 1}, "family:web", []types.PlacementConstraint{{Type: types.PlacementConstraintTypeDistinctInstance}}, nil, def)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Constraints) != 2 || !reflect.DeepEqual(r.Strategies, def) || len(r.Required) != 1 || r.Group != "family:web" {
		t.Errorf("request = %+v, want 2 constraints, the default strategy, 1 required attribute", r)
	}
	r, err = Request(td, scheduler.Demand{}, "", nil, []types.PlacementStrategy{{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("memory")}}, def)
	if err != nil || len(r.Strategies) != 1 || r.Strategies[0].Type != "binpack" {
		t.Errorf("caller's strategy: %+v, %v", r, err)
	}
	many := make([]types.PlacementConstraint, scheduler.MaxConstraints)
	for i := range many {
		many[i] = types.PlacementConstraint{Type: types.PlacementConstraintTypeDistinctInstance}
	}
	var ae *awsproto.Error
	if _, err := Request(td, scheduler.Demand{}, "", many, nil, def); !errors.As(err, &ae) || ae.Type != "InvalidParameterException" {
		t.Errorf("%d constraints with the definition's: %v, want InvalidParameterException", len(many)+1, err)
	}
	if _, err := Request(td, scheduler.Demand{}, "", []types.PlacementConstraint{{Type: "memberOf", Expression: aws.String("attribute:")}}, nil, def); !errors.As(err, &ae) || ae.Type != "InvalidParameterException" {
		t.Errorf("a malformed expression: %v, want InvalidParameterException", err)
	}
}
