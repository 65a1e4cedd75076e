package ecsapi

import (
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// maxServiceTargetGroups is ECS's limit of target groups per service.
const maxServiceTargetGroups = 5

// validateLoadBalancers checks a service's loadBalancers against the
// endpoint's target groups and the task definition td, as ECS does: each
// names a target group that exists and is attached to a load balancer, a
// container of td and a port that container maps, with a target type that
// fits td's network mode and a protocol its port mapping uses. The error
// names the entry and member.
func (s *Server) validateLoadBalancers(tx store.Tx, lbs []types.LoadBalancer, td *types.TaskDefinition) error {
	if len(lbs) > maxServiceTargetGroups {
		return invalidParam("loadBalancers: a service can have at most %d target groups; got %d.", maxServiceTargetGroups, len(lbs))
	}
	lbARNs := records.LBARNs{Region: s.arns.Region, AccountID: s.arns.AccountID}
	mode := td.NetworkMode
	if mode == "" {
		mode = types.NetworkModeBridge
	}
	for i, lb := range lbs {
		at := fmt.Sprintf("loadBalancers[%d]", i)
		tgArn, name := aws.ToString(lb.TargetGroupArn), aws.ToString(lb.ContainerName)
		switch {
		case aws.ToString(lb.LoadBalancerName) != "":
			return invalidParam("%s.loadBalancerName: Classic Load Balancers are not served; name an Application or Network Load Balancer's targetGroupArn.", at)
		case tgArn == "":
			return invalidParam("%s.targetGroupArn: Target Group Arn can not be blank.", at)
		case name == "":
			return invalidParam("%s.containerName: Container Name can not be blank.", at)
		case lb.ContainerPort == nil:
			return invalidParam("%s.containerPort: Container Port can not be blank.", at)
		}
		for j := range i {
			if aws.ToString(lbs[j].TargetGroupArn) == tgArn && aws.ToString(lbs[j].ContainerName) == name && aws.ToInt32(lbs[j].ContainerPort) == *lb.ContainerPort {
				return invalidParam("%s: loadBalancers[%d] already names target group %s with container %s port %d.", at, j, tgArn, name, *lb.ContainerPort)
			}
		}
		tg, ok, err := records.FindTargetGroup(tx, lbARNs, tgArn)
		if err != nil {
			return err
		}
		if !ok {
			return invalidParam("%s.targetGroupArn: The target group %s does not exist.", at, tgArn)
		}
		if len(tg.TargetGroup.LoadBalancerArns) == 0 {
			return invalidParam("%s.targetGroupArn: The target group with targetGroupArn %s does not have an associated load balancer.", at, tgArn)
		}
		switch tg.TargetGroup.TargetType {
		case elbtypes.TargetTypeEnumInstance:
			if mode == types.NetworkModeAwsvpc {
				return invalidParam("%s.targetGroupArn: The provided target group %s has target type instance, which is incompatible with the awsvpc network mode specified in the task definition.", at, tgArn)
			}
		case elbtypes.TargetTypeEnumIp:
			if mode != types.NetworkModeAwsvpc {
				return invalidParam("%s.targetGroupArn: The provided target group %s has target type ip, which is incompatible with the %s network mode specified in the task definition.", at, tgArn, mode)
			}
			return invalidParam("%s.targetGroupArn: target type ip is not supported by this endpoint yet: the agent does not report an awsvpc task's address; use a target group of target type instance with bridge or host network mode.", at)
		default:
			return invalidParam("%s.targetGroupArn: The provided target group %s has target type %s, which a service cannot register tasks in.", at, tgArn, tg.TargetGroup.TargetType)
		}
		ci := slices.IndexFunc(td.ContainerDefinitions, func(c types.ContainerDefinition) bool { return aws.ToString(c.Name) == name })
		if ci < 0 {
			return invalidParam("%s.containerName: The container %s does not exist in the task definition.", at, name)
		}
		pi := slices.IndexFunc(td.ContainerDefinitions[ci].PortMappings, func(pm types.PortMapping) bool {
			return aws.ToInt32(pm.ContainerPort) == *lb.ContainerPort
		})
		if pi < 0 {
			return invalidParam("%s.containerPort: The container %s did not have a container port %d defined.", at, name, *lb.ContainerPort)
		}
		proto := td.ContainerDefinitions[ci].PortMappings[pi].Protocol
		if proto == "" {
			proto = types.TransportProtocolTcp
		}
		udp := proto == types.TransportProtocolUdp
		if fits := tg.TargetGroup.Protocol == elbtypes.ProtocolEnumTcpUdp || udp == (tg.TargetGroup.Protocol == elbtypes.ProtocolEnumUdp); !fits {
			return invalidParam("%s.containerPort: container %s maps port %d with protocol %s, which target group %s (protocol %s) cannot reach.", at, name, *lb.ContainerPort, proto, tgArn, tg.TargetGroup.Protocol)
		}
	}
	return nil
}

// nonNilLoadBalancers is lbs, or an empty list: ECS answers [] for none.
func nonNilLoadBalancers(lbs []types.LoadBalancer) []types.LoadBalancer {
	if lbs == nil {
		return []types.LoadBalancer{}
	}
	return lbs
}

// sameLoadBalancer reports whether two loadBalancers entries name the same
// target group, container and port.
func sameLoadBalancer(a, b types.LoadBalancer) bool {
	return aws.ToString(a.TargetGroupArn) == aws.ToString(b.TargetGroupArn) && aws.ToString(a.ContainerName) == aws.ToString(b.ContainerName) &&
		aws.ToInt32(a.ContainerPort) == aws.ToInt32(b.ContainerPort) && aws.ToString(a.LoadBalancerName) == aws.ToString(b.LoadBalancerName)
}
