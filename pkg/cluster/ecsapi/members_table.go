package ecsapi

// Why members are refused, where several operations share the reason.
const (
	whyCapacityProviders = "capacity providers scale EC2 Auto Scaling groups or Fargate; Berth's capacity is the hosts whose agents register"
	whyPlatformVersion   = "platform versions exist only for Fargate"
	whyExec              = "ECS Exec needs the SSM agent and Session Manager, which Berth does not run"
	whyServiceConnect    = "Service Connect needs AWS Cloud Map and its Envoy proxy"
	whyLaunchVolumes     = "volumes configured at launch are EBS volumes that ECS creates and attaches"
	whyReferenceID       = "it ties a task to EBS volumes configured at launch, which are not supported"
	whyLattice           = "VPC Lattice is an AWS network service"
	whyRegistries        = "service discovery registers tasks in AWS Cloud Map"
	whyLoadBalancers     = "targetGroupArn of this endpoint's Elastic Load Balancing v2 API with containerName and containerPort, validated as ECS does; target groups of target type instance only (the agent does not report an awsvpc task's address for ip targets); loadBalancerName (Classic Load Balancers) refused; a change is deployed as a new deployment"
	whyGateway           = "Express gateways are AWS-managed ingress"
	whyMonitoring        = "service monitoring configurations feed AWS-managed alarms"
	whyLaunchType        = "EC2 and EXTERNAL; FARGATE and MANAGED_INSTANCES are refused naming launchType"
	whyDaemons           = "ECS daemons (CreateDaemon) are not served"
	whyManagedAgents     = "managed agents are ECS Exec's, which is not supported"
	whyRebalancing       = "ENABLED (the default, as in ECS) or DISABLED, stored and returned; new tasks are spread over ecs.availability-zone by the default placement strategy, but running tasks are not moved to rebalance"
	whyGrace             = "an UNHEALTHY container health check or an unhealthy load balancer target of a task that started within the period does not count"
	whyTDLaunchType      = "EC2 and EXTERNAL; FARGATE and MANAGED_INSTANCES are refused naming requiresCompatibilities"
)

// Members lists every input member of every routed operation with its
// status (see the comment in members.go).
func Members() map[string][]Member {
	cluster := honoured("cluster")
	paging := []Member{honoured("maxResults"), honoured("nextToken")}
	return map[string][]Member{
		"CreateCluster": {
			honoured("clusterName"), honoured("tags"),
			differs("settings", "containerInsights (enabled, enhanced, disabled; other names and values refused naming settings) is stored and returned with include SETTINGS; the metrics it turns on are collected by the metrics work to come"),
			refused("configuration", "its executeCommandConfiguration and managedStorageConfiguration need ECS Exec and KMS-managed Fargate storage"),
			refused("capacityProviders", whyCapacityProviders),
			refused("defaultCapacityProviderStrategy", whyCapacityProviders),
			refused("serviceConnectDefaults", whyServiceConnect),
		},
		"DeleteCluster":    {honoured("cluster")},
		"ListClusters":     paging,
		"DescribeClusters": {honoured("clusters"), honoured("include")},
		"RegisterTaskDefinition": {
			honoured("family"), honoured("cpu"), honoured("memory"),
			differs("containerDefinitions", "each container member's status is in the task definition section of this page"),
			refused("containerDefinitions.resourceRequirements", "GPU and InferenceAccelerator resources need devices Berth does not schedule"),
			honoured("networkMode"), honoured("placementConstraints"),
			differs("volumes", "host and dockerVolumeConfiguration volumes; the AWS storage services are refused by name"),
			refused("volumes.efsVolumeConfiguration", "EFS file systems need the ECS volume plugin and AWS EFS"),
			refused("volumes.fsxWindowsFileServerVolumeConfiguration", "FSx for Windows File Server needs Windows and AWS FSx"),
			refused("volumes.configuredAtLaunch", whyLaunchVolumes),
			honoured("taskRoleArn"), honoured("executionRoleArn"), honoured("pidMode"), honoured("ipcMode"),
			honoured("tags"),
			differs("requiresCompatibilities", whyTDLaunchType),
			refused("proxyConfiguration", "App Mesh proxy configuration needs the ECS CNI plugins"),
			refused("inferenceAccelerators", "Elastic Inference accelerators exist only on EC2"),
			refused("ephemeralStorage", "ephemeral storage is a Fargate setting"),
			differs("runtimePlatform", "placement: cpuArchitecture and operatingSystemFamily become required attributes (ecs.cpu-architecture x86_64 or arm64, ecs.os-type linux, ecs.os-family for the Windows families), so a task never lands on an instance that cannot run it; the RunTask failure is ATTRIBUTE with a detail naming them. Berth's agents register linux and their own architecture"),
			refused("enableFaultInjection", "fault injection endpoints are not served"),
		},
		"DeregisterTaskDefinition":   {honoured("taskDefinition")},
		"DescribeTaskDefinition":     {honoured("taskDefinition"), honoured("include")},
		"ListTaskDefinitions":        append([]Member{honoured("familyPrefix"), honoured("sort"), honoured("status")}, paging...),
		"ListTaskDefinitionFamilies": append([]Member{honoured("familyPrefix"), honoured("status")}, paging...),
		"RegisterContainerInstance": {
			cluster, honoured("containerInstanceArn"), honoured("totalResources"), honoured("attributes"),
			honoured("versionInfo"), honoured("tags"),
			honoured("instanceIdentityDocument"),
			differs("instanceIdentityDocumentSignature", "accepted without checking it against AWS's public certificate: the document is trusted as the agent's key is"),
			refused("platformDevices", "GPU tasks are not supported"),
		},
		"DeregisterContainerInstance": {cluster, honoured("containerInstance"), honoured("force")},
		"ListContainerInstances":      append([]Member{cluster, honoured("filter"), honoured("status")}, paging...),
		"DescribeContainerInstances": {cluster, honoured("containerInstances"),
			differs("include", "TAGS; CONTAINER_INSTANCE_HEALTH reports the runtime as OK while the agent is connected, INSUFFICIENT_DATA otherwise")},
		"UpdateContainerInstancesState": {cluster, honoured("containerInstances"), honoured("status")},
		"PutAttributes":                 {cluster, honoured("attributes")},
		"DeleteAttributes":              {cluster, honoured("attributes")},
		"ListAttributes": append([]Member{cluster, honoured("targetType"), honoured("attributeName"),
			honoured("attributeValue")}, paging...),
		"DiscoverPollEndpoint": {
			differs("cluster", "every cluster's agents poll the same endpoint, so the answer does not depend on it"),
			differs("containerInstance", "every instance polls the same endpoint, so the answer does not depend on it"),
		},
		"RunTask": append([]Member{
			cluster, honoured("taskDefinition"), honoured("count"), honoured("startedBy"), honoured("group"),
			honoured("overrides"), honoured("placementConstraints"), honoured("placementStrategy"), honoured("tags"),
			differs("launchType", whyLaunchType),
			refused("capacityProviderStrategy", whyCapacityProviders),
			honoured("enableECSManagedTags"),
			differs("propagateTags", "TASK_DEFINITION or NONE; SERVICE is refused naming propagateTags, as a task started by hand has no service"),
			refused("enableExecuteCommand", whyExec),
			refused("platformVersion", whyPlatformVersion),
			refused("referenceId", whyReferenceID),
			differs("clientToken", "a retry with the token and the same members gets the same tasks while they are kept (an hour after they stop); with other members it is refused naming clientToken; a call that placed no task keeps nothing"),
			refused("volumeConfigurations", whyLaunchVolumes),
		}, networkMembers()...),
		"StartTask": append([]Member{
			cluster, honoured("containerInstances"), honoured("taskDefinition"), honoured("startedBy"),
			honoured("group"), honoured("overrides"), honoured("tags"),
			honoured("enableECSManagedTags"),
			differs("propagateTags", "TASK_DEFINITION or NONE; SERVICE is refused naming propagateTags, as a task started by hand has no service"),
			refused("enableExecuteCommand", whyExec),
			refused("referenceId", whyReferenceID),
			refused("volumeConfigurations", whyLaunchVolumes),
		}, networkMembers()...),
		"StopTask": {cluster, differs("task", "a service's task registered with load balancers drains first, as in ECS (lastStatus DEACTIVATING, stopped once the deregistration delay passed), but keeps desiredStatus RUNNING until then (ECS shows STOPPED at once)"), honoured("reason")},
		"ListTasks": append([]Member{cluster, honoured("containerInstance"), honoured("desiredStatus"),
			honoured("family"), honoured("launchType"), honoured("serviceName"), honoured("startedBy"),
			refused("daemonName", whyDaemons)}, paging...),
		"DescribeTasks": {cluster, honoured("tasks"), honoured("include")},
		"SubmitTaskStateChange": {
			cluster, honoured("task"), honoured("status"), honoured("reason"), honoured("containers"),
			honoured("pullStartedAt"), honoured("pullStoppedAt"), honoured("executionStoppedAt"),
			refused("attachments", "the ECS agent reports the ENIs and EBS volumes that ECS attached and delivered in the task's payload; Berth delivers none, so there is nothing to report"),
			refused("managedAgents", whyManagedAgents),
		},
		"SubmitContainerStateChange": {
			cluster, honoured("task"), honoured("containerName"), honoured("status"), honoured("exitCode"),
			honoured("reason"), honoured("runtimeId"), honoured("networkBindings"),
		},
		"CreateService": append([]Member{
			cluster, honoured("serviceName"), honoured("taskDefinition"), honoured("desiredCount"),
			honoured("schedulingStrategy"), honoured("placementConstraints"), honoured("placementStrategy"),
			honoured("tags"),
			differs("deploymentController", "type ECS only; CODE_DEPLOY and EXTERNAL are refused naming deploymentController"),
			differs("launchType", whyLaunchType),
			differs("availabilityZoneRebalancing", whyRebalancing),
			refused("capacityProviderStrategy", whyCapacityProviders),
			honoured("clientToken"),
			honoured("enableECSManagedTags"), honoured("propagateTags"),
			refused("enableExecuteCommand", whyExec),
			refused("gatewayConnectors", whyGateway),
			differs("healthCheckGracePeriodSeconds", whyGrace),
			differs("loadBalancers", whyLoadBalancers),
			refused("role", "the endpoint registers a service's targets itself: there is no IAM role to assume"),
			refused("monitoring", whyMonitoring),
			refused("platformVersion", whyPlatformVersion),
			refused("serviceConnectConfiguration", whyServiceConnect),
			refused("serviceRegistries", whyRegistries),
			refused("volumeConfigurations", whyLaunchVolumes),
			refused("vpcLatticeConfigurations", whyLattice),
		}, append(networkMembers(), deploymentMembers()...)...),
		"UpdateService": append([]Member{
			cluster, honoured("service"), honoured("taskDefinition"), honoured("desiredCount"),
			honoured("placementConstraints"), honoured("placementStrategy"), honoured("forceNewDeployment"),
			refused("deploymentController", "the deployment controller of a service cannot change from ECS"),
			differs("availabilityZoneRebalancing", whyRebalancing),
			refused("capacityProviderStrategy", whyCapacityProviders),
			honoured("enableECSManagedTags"), honoured("propagateTags"),
			refused("enableExecuteCommand", whyExec),
			refused("gatewayConnectors", whyGateway),
			differs("healthCheckGracePeriodSeconds", whyGrace),
			differs("loadBalancers", whyLoadBalancers),
			refused("monitoring", whyMonitoring),
			refused("platformVersion", whyPlatformVersion),
			refused("serviceConnectConfiguration", whyServiceConnect),
			refused("serviceRegistries", whyRegistries),
			refused("volumeConfigurations", whyLaunchVolumes),
			refused("vpcLatticeConfigurations", whyLattice),
		}, append(networkMembers(), deploymentMembers()...)...),
		"DeleteService":         {cluster, honoured("service"), honoured("force")},
		"DescribeServices":      {cluster, honoured("services"), honoured("include")},
		"TagResource":           {honoured("resourceArn"), honoured("tags")},
		"UntagResource":         {honoured("resourceArn"), honoured("tagKeys")},
		"ListTagsForResource":   {honoured("resourceArn")},
		"DeleteTaskDefinitions": {differs("taskDefinitions", "INACTIVE revisions are deleted at once; one a kept task still uses stays DELETE_IN_PROGRESS; an ACTIVE one is a failure (reason ACTIVE)")},
		"UpdateCluster": {honoured("cluster"), differs("settings", "containerInsights only, as in CreateCluster"),
			refused("configuration", "its executeCommandConfiguration and managedStorageConfiguration need ECS Exec and KMS-managed Fargate storage"),
			refused("serviceConnectDefaults", whyServiceConnect)},
		"UpdateClusterSettings": {honoured("cluster"), differs("settings", "containerInsights only, as in CreateCluster")},
		"PutClusterCapacityProviders": {honoured("cluster"),
			refused("capacityProviders", whyCapacityProviders), refused("defaultCapacityProviderStrategy", whyCapacityProviders)},
		"DescribeServiceDeployments": {honoured("serviceDeploymentArns")},
		"ListServiceDeployments": append([]Member{cluster, honoured("service"), honoured("createdAt"),
			differs("status", "a deployment that was replaced while rolling out is STOPPED, one that failed and was rolled back ROLLBACK_SUCCESSFUL; the REQUESTED stages are never seen")}, paging...),
		"DescribeServiceRevisions": {honoured("serviceRevisionArns")},
		"StopServiceDeployment": {honoured("serviceDeploymentArn"),
			differs("stopType", "ROLLBACK (the default): the last completed revision is deployed again; ABORT is refused naming stopType")},
		"ListServices": append([]Member{cluster, honoured("launchType"), honoured("schedulingStrategy"),
			differs("resourceManagementType", "every service is CUSTOMER-managed: ECS lists none")}, paging...),
	}
}

// NotRouted gives, for each ECS operation the endpoint does not serve, why;
// such a call is answered with UnknownOperationException.
func NotRouted() map[string]string {
	const (
		capacity = "capacity providers scale EC2 Auto Scaling groups or Fargate"
		express  = "Express gateway services are AWS-managed ingress and compute"
		daemons  = "ECS daemons are a managed-instances feature"
		taskSets = "task sets belong to the EXTERNAL and CODE_DEPLOY deployment controllers"
		account  = "account settings (ARN formats, awsvpc trunking, Container Insights defaults) are fixed on Berth"
	)
	return map[string]string{
		"AssociateGatewayWithCluster":    express,
		"ContinueServiceDeployment":      "lifecycle hooks of blue/green deployments are not supported",
		"CreateCapacityProvider":         capacity,
		"CreateDaemon":                   daemons,
		"CreateExpressGatewayService":    express,
		"CreateGateway":                  express,
		"CreateTaskSet":                  taskSets,
		"DeleteAccountSetting":           account,
		"DeleteCapacityProvider":         capacity,
		"DeleteDaemon":                   daemons,
		"DeleteDaemonTaskDefinition":     daemons,
		"DeleteExpressGatewayService":    express,
		"DeleteGateway":                  express,
		"DeleteTaskSet":                  taskSets,
		"DescribeCapacityProviders":      capacity,
		"DescribeDaemon":                 daemons,
		"DescribeDaemonDeployments":      daemons,
		"DescribeDaemonRevisions":        daemons,
		"DescribeDaemonTaskDefinition":   daemons,
		"DescribeExpressGatewayService":  express,
		"DescribeGateway":                express,
		"DescribeGatewayResources":       express,
		"DescribeGatewayRoute":           express,
		"DescribeTaskSets":               taskSets,
		"DisassociateGatewayFromCluster": express,
		"ExecuteCommand":                 "ECS Exec needs the SSM agent and Session Manager",
		"GetTaskProtection":              "task scale-in protection is not supported",
		"ListAccountSettings":            account,
		"ListDaemonDeployments":          daemons,
		"ListDaemonTaskDefinitions":      daemons,
		"ListDaemons":                    daemons,
		"ListGatewayClusterAssociations": express,
		"ListGatewayRoutes":              express,
		"ListGateways":                   express,
		"ListServicesByNamespace":        "Service Connect namespaces live in AWS Cloud Map",
		"PutAccountSetting":              account,
		"PutAccountSettingDefault":       account,
		"RegisterDaemonTaskDefinition":   daemons,
		"SubmitAttachmentStateChanges":   "attachments (ENIs, EBS volumes) are created by ECS on AWS; Berth's tasks have none to report",
		"UpdateCapacityProvider":         capacity,
		"UpdateContainerAgent":           "Berth is upgraded by its package manager, not through the API",
		"UpdateDaemon":                   daemons,
		"UpdateExpressGatewayService":    express,
		"UpdateGateway":                  express,
		"UpdateServicePrimaryTaskSet":    taskSets,
		"UpdateTaskProtection":           "task scale-in protection is not supported",
		"UpdateTaskSet":                  taskSets,
	}
}

// deploymentMembers are the entries of Members() for a service's
// deploymentConfiguration, shared by CreateService and UpdateService; the
// refused ones' notes are refuseDeploymentStrategy's reasons.
func deploymentMembers() []Member {
	return []Member{
		differs("deploymentConfiguration", "minimumHealthyPercent, maximumPercent and deploymentCircuitBreaker (rolling deployments); the members below are refused by name"),
		refused("deploymentConfiguration.alarms", "CloudWatch alarms are not evaluated for deployments"),
		refused("deploymentConfiguration.bakeTimeInMinutes", "bake time belongs to blue/green deployments"),
		refused("deploymentConfiguration.canaryConfiguration", "canary deployments are not supported"),
		refused("deploymentConfiguration.earlySuccessCriteria", "it belongs to canary and linear deployments"),
		refused("deploymentConfiguration.lifecycleHooks", "lifecycle hooks belong to blue/green deployments"),
		refused("deploymentConfiguration.linearConfiguration", "linear deployments are not supported"),
		refused("deploymentConfiguration.strategy", "only ROLLING deployments are supported"),
	}
}

// refuseNested is the refusal of the nested member name of members, with
// its note as the reason.
func refuseNested(op string, members []Member, name string) error {
	for _, m := range members {
		if m.Name == name {
			return refusal(op, name, m.Note)
		}
	}
	return refusal(op, name, "it is not supported")
}
