package api

import (
	"github.com/berth-dev/berth/pkg/api/arn"
)

// Desired and known statuses that travel on the wire.
const (
	StatusRunning = "RUNNING"
	StatusStopped = "STOPPED"
)

// Network modes of a task (Task.NetworkMode). Empty means bridge.
const (
	NetworkModeBridge = "bridge"
	NetworkModeHost   = "host"
	NetworkModeNone   = "none"
	NetworkModeAWSVPC = "awsvpc"
)

// Volume types (Volume.Type).
const (
	VolumeTypeHost   = "host"
	VolumeTypeDocker = "docker"
	VolumeTypeEFS    = "efs"
	VolumeTypeFSx    = "fsxWindowsFileServer"
	VolumeTypeEBS    = "ebs"
	VolumeTypeLogs   = "logDriverOutput"
)

// Docker volume scopes (DockerVolumeConfiguration.Scope).
const (
	VolumeScopeTask   = "task"
	VolumeScopeShared = "shared"
)

// Container dependency conditions (ContainerDependency.Condition).
const (
	ConditionStart    = "START"
	ConditionComplete = "COMPLETE"
	ConditionSuccess  = "SUCCESS"
	ConditionHealthy  = "HEALTHY"
)

// Role types of IAMRoleCredentialsMessage.RoleType.
const (
	RoleTypeTaskApplication = "TaskApplication"
	RoleTypeTaskExecution   = "TaskExecution"
)

// Transport protocols of a port mapping. Empty means tcp.
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// HealthCheckTypeDocker is the only Container.HealthCheckType: the health
// check is the Docker-format Healthcheck inside dockerConfig.config.
const HealthCheckTypeDocker = "docker"

// Task is one task as ACS delivers it in a PayloadMessage. A payload that
// only changes the desired status may carry a task with nothing but arn,
// desiredStatus, family, version and container names.
type Task struct {
	Arn                      string                     `json:"arn,omitempty"`
	TaskClusterArn           string                     `json:"taskClusterArn,omitempty"`
	Family                   string                     `json:"family,omitempty"`
	Version                  string                     `json:"version,omitempty"`
	DesiredStatus            string                     `json:"desiredStatus,omitempty"`
	Overrides                string                     `json:"overrides,omitempty"`
	Zone                     string                     `json:"zone,omitempty"`
	TaskDefinitionAccountID  string                     `json:"taskDefinitionAccountId,omitempty"`
	Containers               []*Container               `json:"containers,omitempty"`
	Volumes                  []*Volume                  `json:"volumes,omitempty"`
	RoleCredentials          *IAMRoleCredentials        `json:"roleCredentials,omitempty"`
	ExecutionRoleCredentials *IAMRoleCredentials        `json:"executionRoleCredentials,omitempty"`
	ElasticNetworkInterfaces []*ElasticNetworkInterface `json:"elasticNetworkInterfaces,omitempty"`
	// Cpu is the task-level CPU limit in CPU units (1024 per vCPU); 0 means none.
	Cpu float64 `json:"cpu,omitempty"`
	// Memory is the task-level memory limit in MiB; 0 means none.
	Memory             int64               `json:"memory,omitempty"`
	Associations       []*Association      `json:"associations,omitempty"`
	PidMode            string              `json:"pidMode,omitempty"`
	IpcMode            string              `json:"ipcMode,omitempty"`
	ProxyConfiguration *ProxyConfiguration `json:"proxyConfiguration,omitempty"`
	AgentConfiguration string              `json:"agentConfiguration,omitempty"`
	LaunchType         string              `json:"launchType,omitempty"`
	Attachments        []*Attachment       `json:"attachments,omitempty"`
	// NetworkMode is one of the NetworkMode* constants; empty means bridge.
	NetworkMode                   string                         `json:"networkMode,omitempty"`
	ServiceName                   string                         `json:"serviceName,omitempty"`
	Group                         string                         `json:"group,omitempty"`
	EnableFaultInjection          bool                           `json:"enableFaultInjection,omitempty"`
	TrustedExecutionConfiguration *TrustedExecutionConfiguration `json:"trustedExecutionConfiguration,omitempty"`
}

// ID returns the task ID: the last "/"-separated segment of the ARN
// (arn:aws:ecs:<region>:<account>:task/<cluster>/<id>), or the whole ARN
// when it has no "/".
func (t *Task) ID() string { return arn.ResourceID(t.Arn) }

// Container looks up a container of the task by name; nil when absent.
func (t *Task) Container(name string) *Container {
	for _, c := range t.Containers {
		if c != nil && c.Name == name {
			return c
		}
	}
	return nil
}

// Volume looks up a volume of the task by name; nil when absent.
func (t *Task) Volume(name string) *Volume {
	for _, v := range t.Volumes {
		if v != nil && v.Name == name {
			return v
		}
	}
	return nil
}

// EffectiveNetworkMode is NetworkMode with the empty value read as bridge.
func (t *Task) EffectiveNetworkMode() string {
	if t.NetworkMode == "" {
		return NetworkModeBridge
	}
	return t.NetworkMode
}

// Container is one container of a Task.
type Container struct {
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	// Cpu is in CPU units (1024 per vCPU).
	Cpu int64 `json:"cpu,omitempty"`
	// Memory is the hard limit in MiB; 0 means none (the soft limit,
	// MemoryReservation, then travels in dockerConfig.hostConfig).
	Memory     int64    `json:"memory,omitempty"`
	Essential  bool     `json:"essential,omitempty"`
	EntryPoint []string `json:"entryPoint,omitempty"`
	Command    []string `json:"command,omitempty"`
	// Environment is a JSON object (name to value) on the ACS wire, unlike
	// the list of name/value pairs that task definitions use.
	Environment            map[string]string           `json:"environment,omitempty"`
	EnvironmentFiles       []EnvironmentFile           `json:"environmentFiles,omitempty"`
	PortMappings           []PortMapping               `json:"portMappings,omitempty"`
	MountPoints            []MountPoint                `json:"mountPoints,omitempty"`
	VolumesFrom            []VolumeFrom                `json:"volumesFrom,omitempty"`
	Links                  []string                    `json:"links,omitempty"`
	DependsOn              []ContainerDependency       `json:"dependsOn,omitempty"`
	StartTimeout           int64                       `json:"startTimeout,omitempty"` // seconds
	StopTimeout            int64                       `json:"stopTimeout,omitempty"`  // seconds
	DockerConfig           RawDockerConfig             `json:"dockerConfig,omitzero"`
	LinuxParameters        *LinuxParameters            `json:"linuxParameters,omitempty"`
	Privileged             *bool                       `json:"privileged,omitempty"`
	HealthCheckType        string                      `json:"healthCheckType,omitempty"`
	RegistryAuthentication *RegistryAuthenticationData `json:"registryAuthentication,omitempty"`
	LogsAuthStrategy       string                      `json:"logsAuthStrategy,omitempty"`
	Secrets                []Secret                    `json:"secrets,omitempty"`
	Overrides              string                      `json:"overrides,omitempty"`
	RestartPolicy          *RestartPolicy              `json:"restartPolicy,omitempty"`
	ManagedAgents          []ManagedAgent              `json:"managedAgents,omitempty"`
	CredentialSpecs        []string                    `json:"credentialSpecs,omitempty"`
	NetworkInterfaceNames  []string                    `json:"networkInterfaceNames,omitempty"`
	FirelensConfiguration  *FirelensConfiguration      `json:"firelensConfiguration,omitempty"`
	ContainerArn           string                      `json:"containerArn,omitempty"`
	// DesiredStatus is not in the ACS model but appears in payloads in the
	// wild (the upstream agent's fixtures); kept for a faithful round trip.
	DesiredStatus string `json:"desiredStatus,omitempty"`
}

// RawDockerConfig is the ACS "DockerConfig" shape: Docker Engine API
// container config and host config as JSON strings. Decode them with
// DecodeDockerConfig (or the Decode method); build them with
// EncodeDockerConfig.
type RawDockerConfig struct {
	Version    string `json:"version,omitempty"`
	Config     string `json:"config,omitempty"`
	HostConfig string `json:"hostConfig,omitempty"`
}

// Decode decodes the strings into the supported settings; see
// DecodeDockerConfig.
func (r RawDockerConfig) Decode() (*ContainerSettings, error) {
	return DecodeDockerConfig(r.Config, r.HostConfig)
}

// PortMapping maps a container port (or range) to a host port. HostPort 0
// means "let the agent pick one" in bridge mode.
type PortMapping struct {
	ContainerPort int64 `json:"containerPort,omitempty"`
	HostPort      int64 `json:"hostPort,omitempty"`
	// ContainerPortRange is "first-last", used instead of ContainerPort.
	ContainerPortRange string `json:"containerPortRange,omitempty"`
	// Protocol is ProtocolTCP or ProtocolUDP; empty means tcp.
	Protocol string `json:"protocol,omitempty"`
}

// EffectiveProtocol is Protocol with the empty value read as tcp.
func (p PortMapping) EffectiveProtocol() string {
	if p.Protocol == "" {
		return ProtocolTCP
	}
	return p.Protocol
}

// MountPoint mounts a task volume into a container.
type MountPoint struct {
	SourceVolume  string `json:"sourceVolume,omitempty"`
	ContainerPath string `json:"containerPath,omitempty"`
	ReadOnly      bool   `json:"readOnly,omitempty"`
}

// VolumeFrom mounts every volume of another container of the task.
type VolumeFrom struct {
	SourceContainer string `json:"sourceContainer,omitempty"`
	ReadOnly        bool   `json:"readOnly,omitempty"`
}

// ContainerDependency makes a container wait for another one to reach a
// condition (one of the Condition* constants).
type ContainerDependency struct {
	ContainerName string `json:"containerName,omitempty"`
	Condition     string `json:"condition,omitempty"`
}

// EnvironmentFile is an environment file to load (type "s3").
type EnvironmentFile struct {
	Value string `json:"value,omitempty"`
	Type  string `json:"type,omitempty"`
}

// Secret is a secret to inject into a container or a log driver.
// Target is SecretTargetLogDriver for a logConfiguration.secretOptions
// entry (empty or "CONTAINER" otherwise); Type is SecretTypeEnv for an
// environment variable; Provider is "ssm" or "asm".
type Secret struct {
	Name          string `json:"name,omitempty"`
	ValueFrom     string `json:"valueFrom,omitempty"`
	ContainerPath string `json:"containerPath,omitempty"`
	Type          string `json:"type,omitempty"`
	Region        string `json:"region,omitempty"`
	Provider      string `json:"provider,omitempty"`
	Target        string `json:"target,omitempty"`
}

// Secret targets, types and providers as ACS names them.
const (
	SecretTargetContainer = "CONTAINER"
	SecretTargetLogDriver = "LOG_DRIVER"
	SecretTypeEnv         = "ENVIRONMENT_VARIABLE"
	SecretProviderSSM     = "ssm"
	SecretProviderASM     = "asm"
)

// RestartPolicy restarts a container in place when it exits.
type RestartPolicy struct {
	Enabled              bool    `json:"enabled,omitempty"`
	IgnoredExitCodes     []int64 `json:"ignoredExitCodes,omitempty"`
	RestartAttemptPeriod int64   `json:"restartAttemptPeriod,omitempty"`
}

// ManagedAgent is a sidecar agent managed by ECS (ExecuteCommandAgent).
type ManagedAgent struct {
	Name       string            `json:"name,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

// LinuxParameters are Linux-specific container settings.
type LinuxParameters struct {
	Capabilities       *KernelCapabilities `json:"capabilities,omitempty"`
	Devices            []Device            `json:"devices,omitempty"`
	InitProcessEnabled *bool               `json:"initProcessEnabled,omitempty"`
	// SharedMemorySize is in MiB.
	SharedMemorySize *int64 `json:"sharedMemorySize,omitempty"`
}

// KernelCapabilities adds and drops Linux capabilities.
type KernelCapabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// Device exposes a host device to a container.
type Device struct {
	HostPath      string   `json:"hostPath,omitempty"`
	ContainerPath string   `json:"containerPath,omitempty"`
	Permissions   []string `json:"permissions,omitempty"`
}

// RegistryAuthenticationData says how to authenticate to the image registry.
type RegistryAuthenticationData struct {
	Type        string       `json:"type,omitempty"` // "ecr" or "asm"
	ECRAuthData *ECRAuthData `json:"ecrAuthData,omitempty"`
	ASMAuthData *ASMAuthData `json:"asmAuthData,omitempty"`
}

// ECRAuthData locates an ECR registry.
type ECRAuthData struct {
	RegistryID       string `json:"registryId,omitempty"`
	Region           string `json:"region,omitempty"`
	EndpointOverride string `json:"endpointOverride,omitempty"`
	UseExecutionRole bool   `json:"useExecutionRole,omitempty"`
}

// ASMAuthData names a Secrets Manager secret holding registry credentials.
type ASMAuthData struct {
	CredentialsParameter string `json:"credentialsParameter,omitempty"`
	Region               string `json:"region,omitempty"`
}

// FirelensConfiguration configures a FireLens log router container.
type FirelensConfiguration struct {
	Type    string            `json:"type,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// Volume is one volume of a task.
type Volume struct {
	Name string `json:"name,omitempty"`
	// Type is one of the VolumeType* constants. ACS may leave it empty for
	// a host volume.
	Type                                    string                                   `json:"type,omitempty"`
	Host                                    *HostVolumeProperties                    `json:"host,omitempty"`
	DockerVolumeConfiguration               *DockerVolumeConfiguration               `json:"dockerVolumeConfiguration,omitempty"`
	EFSVolumeConfiguration                  *EFSVolumeConfiguration                  `json:"efsVolumeConfiguration,omitempty"`
	FSxWindowsFileServerVolumeConfiguration *FSxWindowsFileServerVolumeConfiguration `json:"fsxWindowsFileServerVolumeConfiguration,omitempty"`
	EBSVolumeConfiguration                  *EBSVolumeConfiguration                  `json:"ebsVolumeConfiguration,omitempty"`
	LogDriverVolumeConfiguration            *LogDriverVolumeConfiguration            `json:"logDriverVolumeConfiguration,omitempty"`
}

// HostVolumeProperties is a bind mount of a host path. An empty SourcePath
// means an agent-managed empty directory that lives as long as the task.
type HostVolumeProperties struct {
	SourcePath string `json:"sourcePath,omitempty"`
}

// DockerVolumeConfiguration is a named volume with a driver.
type DockerVolumeConfiguration struct {
	// Scope is VolumeScopeTask (created for the task, removed at clean-up)
	// or VolumeScopeShared (outlives the task).
	Scope         string            `json:"scope,omitempty"`
	Autoprovision bool              `json:"autoprovision,omitempty"`
	Driver        string            `json:"driver,omitempty"`
	DriverOpts    map[string]string `json:"driverOpts,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// EFSVolumeConfiguration is an Amazon EFS volume.
type EFSVolumeConfiguration struct {
	FileSystemID          string                  `json:"fileSystemId,omitempty"`
	RootDirectory         string                  `json:"rootDirectory,omitempty"`
	TransitEncryption     string                  `json:"transitEncryption,omitempty"`
	TransitEncryptionPort int64                   `json:"transitEncryptionPort,omitempty"`
	AuthorizationConfig   *EFSAuthorizationConfig `json:"authorizationConfig,omitempty"`
}

// EFSAuthorizationConfig authorizes access to an EFS volume.
type EFSAuthorizationConfig struct {
	AccessPointID string `json:"accessPointId,omitempty"`
	IAM           string `json:"iam,omitempty"`
}

// FSxWindowsFileServerVolumeConfiguration is an FSx for Windows volume.
type FSxWindowsFileServerVolumeConfiguration struct {
	FileSystemID        string                                   `json:"fileSystemId,omitempty"`
	RootDirectory       string                                   `json:"rootDirectory,omitempty"`
	AuthorizationConfig *FSxWindowsFileServerAuthorizationConfig `json:"authorizationConfig,omitempty"`
}

// FSxWindowsFileServerAuthorizationConfig authorizes access to FSx.
type FSxWindowsFileServerAuthorizationConfig struct {
	CredentialsParameter string `json:"credentialsParameter,omitempty"`
	Domain               string `json:"domain,omitempty"`
}

// EBSVolumeConfiguration is an EBS volume attached for the task.
type EBSVolumeConfiguration struct {
	VolumeID            string `json:"volumeId,omitempty"`
	DeleteOnTermination bool   `json:"deleteOnTermination,omitempty"`
	DeviceName          string `json:"deviceName,omitempty"`
	FilesystemType      string `json:"filesystemType,omitempty"`
}

// LogDriverVolumeConfiguration is a volume for a log driver's output.
type LogDriverVolumeConfiguration struct {
	Driver string `json:"driver,omitempty"`
}

// IAMRoleCredentials are temporary credentials for a task's role.
// Expiration is an RFC 3339 time as sent by the endpoint (kept as a string
// because endpoints in the wild use more than one layout).
type IAMRoleCredentials struct {
	CredentialsID   string `json:"credentialsId,omitempty"`
	RoleArn         string `json:"roleArn,omitempty"`
	AccessKeyID     string `json:"accessKeyId,omitempty"`
	SecretAccessKey string `json:"secretAccessKey,omitempty"`
	SessionToken    string `json:"sessionToken,omitempty"`
	Expiration      string `json:"expiration,omitempty"`
	CredentialScope string `json:"credentialScope,omitempty"`
}

// String hides the secret parts so that credentials can be logged safely.
func (c *IAMRoleCredentials) String() string {
	if c == nil {
		return "<nil>"
	}
	return "IAMRoleCredentials{id=" + c.CredentialsID + " role=" + c.RoleArn +
		" expiration=" + c.Expiration + "}"
}

// Association attaches a resource (GPU, elastic inference) to containers.
type Association struct {
	Name       string         `json:"name,omitempty"`
	Type       string         `json:"type,omitempty"`
	Content    *EncodedString `json:"content,omitempty"`
	Containers []string       `json:"containers,omitempty"`
}

// EncodedString is a value with its encoding ("identity" or "base64").
type EncodedString struct {
	Value    string `json:"value,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

// ProxyConfiguration configures an App Mesh proxy.
type ProxyConfiguration struct {
	Type          string            `json:"type,omitempty"`
	ContainerName string            `json:"containerName,omitempty"`
	Properties    map[string]string `json:"properties,omitempty"`
}

// Attachment is a generic resource attached to a task.
type Attachment struct {
	AttachmentArn        string               `json:"attachmentArn,omitempty"`
	AttachmentType       string               `json:"attachmentType,omitempty"`
	AttachmentProperties []AttachmentProperty `json:"attachmentProperties,omitempty"`
}

// AttachmentProperty is one name/value property of an Attachment.
type AttachmentProperty struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// TrustedExecutionConfiguration selects an isolation mode.
type TrustedExecutionConfiguration struct {
	IsolationMode string `json:"isolationMode,omitempty"`
}

// ElasticNetworkInterface is an ENI attached to a task or an instance.
type ElasticNetworkInterface struct {
	Name                         string                            `json:"name,omitempty"`
	MacAddress                   string                            `json:"macAddress,omitempty"`
	AttachmentArn                string                            `json:"attachmentArn,omitempty"`
	Ec2ID                        string                            `json:"ec2Id,omitempty"`
	Index                        int64                             `json:"index,omitempty"`
	InterfaceAssociationProtocol string                            `json:"interfaceAssociationProtocol,omitempty"`
	InterfaceTunnelProperties    *NetworkInterfaceTunnelProperties `json:"interfaceTunnelProperties,omitempty"`
	InterfaceVethProperties      *NetworkInterfaceVethProperties   `json:"interfaceVethProperties,omitempty"`
	InterfaceVlanProperties      *NetworkInterfaceVlanProperties   `json:"interfaceVlanProperties,omitempty"`
	IPv4Addresses                []IPv4AddressAssignment           `json:"ipv4Addresses,omitempty"`
	IPv6Addresses                []IPv6AddressAssignment           `json:"ipv6Addresses,omitempty"`
	DomainName                   []string                          `json:"domainName,omitempty"`
	DomainNameServers            []string                          `json:"domainNameServers,omitempty"`
	PrivateDNSName               string                            `json:"privateDnsName,omitempty"`
	SubnetGatewayIPv4Address     string                            `json:"subnetGatewayIpv4Address,omitempty"`
	SubnetGatewayIPv6Address     string                            `json:"subnetGatewayIpv6Address,omitempty"`
}

// IPv4AddressAssignment is an IPv4 address of an ENI.
type IPv4AddressAssignment struct {
	PrivateAddress string `json:"privateAddress,omitempty"`
	Primary        bool   `json:"primary,omitempty"`
}

// IPv6AddressAssignment is an IPv6 address of an ENI.
type IPv6AddressAssignment struct {
	Address string `json:"address,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

// NetworkInterfaceTunnelProperties describes a tunnel ENI.
type NetworkInterfaceTunnelProperties struct {
	TunnelID           string `json:"tunnelId,omitempty"`
	InterfaceIPAddress string `json:"interfaceIpAddress,omitempty"`
}

// NetworkInterfaceVethProperties describes a veth ENI.
type NetworkInterfaceVethProperties struct {
	PeerInterface string `json:"peerInterface,omitempty"`
}

// NetworkInterfaceVlanProperties describes a VLAN (trunk) ENI.
type NetworkInterfaceVlanProperties struct {
	VlanID                   string `json:"vlanId,omitempty"`
	TrunkInterfaceMacAddress string `json:"trunkInterfaceMacAddress,omitempty"`
}
