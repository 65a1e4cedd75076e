package ecsapi

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// maxSubnets is awsvpcConfiguration's limit on subnets.
const maxSubnets = 16

// networkMembers are the entries of Members() for networkConfiguration,
// shared by RunTask, StartTask, CreateService and UpdateService.
func networkMembers() []Member {
	return []Member{
		differs("networkConfiguration", "awsvpcConfiguration for task definitions with networkMode awsvpc (refused naming networkConfiguration for the others); optional, unlike ECS: Berth's awsvpc tasks get their own network namespace on the host's task bridge. The task shows an ElasticNetworkInterface attachment (PRECREATED, ATTACHED, DELETED with the task) with subnetId and networkInterfaceId; its privateIPv4Address is not reported by the agent yet"),
		differs("networkConfiguration.awsvpcConfiguration.subnets", "1 to 16, required with awsvpcConfiguration; the first is shown as the attachment's subnetId, it does not choose the task's address"),
		refused("networkConfiguration.awsvpcConfiguration.securityGroups", "security groups filter an ENI's traffic in a VPC; Berth does not filter task traffic by group"),
		differs("networkConfiguration.awsvpcConfiguration.assignPublicIp", "DISABLED only: ENABLED (a public address, Fargate's) is refused naming it"),
	}
}

// validateNetwork checks a call's networkConfiguration against the task
// definition it runs (op names the refusals).
func validateNetwork(op string, nc *types.NetworkConfiguration, td *types.TaskDefinition) error {
	if nc == nil || nc.AwsvpcConfiguration == nil {
		return nil
	}
	if td.NetworkMode != types.NetworkModeAwsvpc {
		return invalidParam("networkConfiguration is only valid for task definitions with networkMode awsvpc; %s has %s.",
			aws.ToString(td.TaskDefinitionArn), networkModeOf(td))
	}
	vpc := nc.AwsvpcConfiguration
	if len(vpc.Subnets) == 0 || len(vpc.Subnets) > maxSubnets {
		return invalidParam("networkConfiguration.awsvpcConfiguration.subnets must have between 1 and %d items.", maxSubnets)
	}
	if len(vpc.SecurityGroups) > 0 {
		return refusal(op, "networkConfiguration.awsvpcConfiguration.securityGroups", "Berth does not filter task traffic by security group")
	}
	switch vpc.AssignPublicIp {
	case "", types.AssignPublicIpDisabled:
	case types.AssignPublicIpEnabled:
		return refusal(op, "networkConfiguration.awsvpcConfiguration.assignPublicIp", "ENABLED gives a Fargate task a public address; Berth's tasks have the host's")
	default:
		return invalidParam("networkConfiguration.awsvpcConfiguration.assignPublicIp must be ENABLED or DISABLED.")
	}
	return nil
}

func networkModeOf(td *types.TaskDefinition) types.NetworkMode {
	if td.NetworkMode == "" {
		return types.NetworkModeBridge
	}
	return td.NetworkMode
}
