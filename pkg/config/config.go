package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Config is the agent's effective configuration. Load fills every field: a
// key that no source sets has its default. Field comments name the key.
type Config struct {
	// Cluster is ECS_CLUSTER: the cluster name or ARN to register into.
	Cluster string
	// BackendHost is ECS_BACKEND_HOST: the ECS API endpoint URL; empty means
	// the AWS SDK's endpoint for the region. A bare host gets "https://".
	BackendHost string
	// DataDir is ECS_DATADIR: where berth.db, logs and task volumes live.
	DataDir string
	// Checkpoint is ECS_CHECKPOINT: persist state so a restart recovers tasks.
	Checkpoint bool

	AWS        AWSConfig
	Log        LogConfig
	Ports      PortsConfig
	Containers ContainersConfig
	Tasks      TasksConfig
	Metrics    MetricsConfig
	Images     ImagesConfig
	Instance   InstanceConfig
	IAM        IAMConfig
	Containerd ContainerdConfig
	Network    NetworkConfig
	Listen     ListenConfig

	// sources maps each key's environment name to where its value came from.
	sources map[string]Source
	// unsupported holds the text of keys Berth accepts but does not apply
	// (StatusRefused), by environment name, for print-config.
	unsupported map[string]string
}

// AWSConfig holds the AWS settings an ECS agent reads from its environment.
type AWSConfig struct {
	// Region is AWS_REGION; use Config.Region for the effective region.
	Region string
	// DefaultRegion is AWS_DEFAULT_REGION, used when AWS_REGION is unset.
	DefaultRegion string
	// AccessKeyID is AWS_ACCESS_KEY_ID (static credentials; optional).
	AccessKeyID string
	// SecretAccessKey is AWS_SECRET_ACCESS_KEY.
	SecretAccessKey Secret
	// SessionToken is AWS_SESSION_TOKEN.
	SessionToken Secret
}

// LogConfig is the agent's own logging.
type LogConfig struct {
	// Level is ECS_LOGLEVEL: debug, info, warn, error or crit.
	Level string
	// File is ECS_LOGFILE: a file to log to; empty means standard error.
	File string
	// Format is ECS_LOG_OUTPUT_FORMAT: logfmt or json.
	Format string
	// FileLevel is ECS_LOGLEVEL_ON_INSTANCE: the level of File; empty means
	// Level. Use EffectiveLevel for the level the agent logs at.
	FileLevel string
	// RolloverType is ECS_LOG_ROLLOVER_TYPE: how File is rotated: size,
	// hourly or none.
	RolloverType string
	// MaxFileSizeMB is ECS_LOG_MAX_FILE_SIZE_MB: with rollover type size,
	// File is rotated when it would grow past this many megabytes.
	MaxFileSizeMB float64
	// MaxRollCount is ECS_LOG_MAX_ROLL_COUNT: rotated files kept.
	MaxRollCount int
}

// EffectiveLevel is the level the agent logs at: ECS_LOGLEVEL_ON_INSTANCE
// when the agent logs to ECS_LOGFILE and it is set, else ECS_LOGLEVEL.
func (lc LogConfig) EffectiveLevel() string {
	if lc.File != "" && lc.FileLevel != "" {
		return lc.FileLevel
	}
	return lc.Level
}

// PortsConfig is host port reservation and allocation.
type PortsConfig struct {
	// Reserved is ECS_RESERVED_PORTS: TCP host ports tasks may never use.
	Reserved []uint16
	// ReservedUDP is ECS_RESERVED_PORTS_UDP: UDP host ports tasks may never use.
	ReservedUDP []uint16
	// DynamicRange is ECS_DYNAMIC_HOST_PORT_RANGE: where hostPort 0 is allocated.
	DynamicRange PortRange
	// ReserveDynamic is BERTH_RESERVE_DYNAMIC_PORTS: report the whole dynamic
	// range as reserved to the cluster instead of only the allocated ports.
	ReserveDynamic bool
	// ExcludeIPv6Bindings is ECS_EXCLUDE_IPV6_PORTBINDING: leave IPv6 host
	// port bindings out of state changes.
	ExcludeIPv6Bindings bool
}

// ContainersConfig is how containers are created, started and stopped.
type ContainersConfig struct {
	// ReservedMemoryMiB is ECS_RESERVED_MEMORY: MiB kept back from tasks.
	ReservedMemoryMiB int
	// AvailableLoggingDrivers is ECS_AVAILABLE_LOGGING_DRIVERS.
	AvailableLoggingDrivers []string
	// AWSLogsEndpoint is BERTH_AWSLOGS_ENDPOINT: the default awslogs-endpoint;
	// "cluster" means the cluster endpoint's log store.
	AWSLogsEndpoint string
	// AWSLogsExecutionRole is ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE:
	// awslogs ships with the task's execution role when it has one.
	AWSLogsExecutionRole bool
	// DisablePrivileged is ECS_DISABLE_PRIVILEGED.
	DisablePrivileged bool
	// StopTimeout is ECS_CONTAINER_STOP_TIMEOUT: wait after the stop signal before SIGKILL.
	StopTimeout time.Duration
	// StartTimeout is ECS_CONTAINER_START_TIMEOUT.
	StartTimeout time.Duration
	// CreateTimeout is ECS_CONTAINER_CREATE_TIMEOUT.
	CreateTimeout time.Duration
	// TaskCleanupWait is ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION: how long a
	// stopped task's containers are kept before cleanup.
	TaskCleanupWait time.Duration
	// TaskCleanupJitter is ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER: a
	// random extra wait of up to this long per task.
	TaskCleanupJitter time.Duration
	// ContainerMetadata is ECS_ENABLE_CONTAINER_METADATA: write the
	// container metadata file and set ECS_CONTAINER_METADATA_FILE.
	ContainerMetadata bool
	// SELinuxCapable is ECS_SELINUX_CAPABLE: honour label: security options.
	SELinuxCapable bool
	// AppArmorCapable is ECS_APPARMOR_CAPABLE: honour apparmor: security options.
	AppArmorCapable bool
	// PullDependentUpfront is ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT: pull the
	// images of containers with dependsOn before their dependencies are met.
	PullDependentUpfront bool
}

// TasksConfig is task-level resource limits.
type TasksConfig struct {
	// CPUMemLimit is ECS_ENABLE_TASK_CPU_MEM_LIMIT: a task cgroup bounds all
	// containers of a task that sets task-level cpu or memory.
	CPUMemLimit bool
	// CgroupCPUPeriod is ECS_CGROUP_CPU_PERIOD: the CFS period of task cpu limits.
	CgroupCPUPeriod time.Duration
	// PropagateMemoryLimit is ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2: a
	// container without a memory limit gets the task's.
	PropagateMemoryLimit bool
	// PidsLimit is ECS_TASK_PIDS_LIMIT: pids.max of each task; 0 means unlimited.
	PidsLimit int
}

// MetricsConfig is the sampling and publication of container metrics.
type MetricsConfig struct {
	// Disabled is ECS_DISABLE_METRICS: no container is sampled and no
	// metrics are published on TCS.
	Disabled bool
	// PollInterval is ECS_POLLING_METRICS_WAIT_DURATION: the time between
	// two samples of every running container (5s to 20s).
	PollInterval time.Duration
}

// ImagesConfig is image pulling, registry authentication and image cleanup.
type ImagesConfig struct {
	// PullBehavior is ECS_IMAGE_PULL_BEHAVIOR: default, always, once or prefer-cached.
	PullBehavior string
	// PullInactivityTimeout is ECS_IMAGE_PULL_INACTIVITY_TIMEOUT: a pull that
	// makes no progress for this long is cancelled.
	PullInactivityTimeout time.Duration
	// PullTimeout is ECS_IMAGE_PULL_TIMEOUT: the hard limit on one pull.
	PullTimeout time.Duration
	// AuthType is ECS_ENGINE_AUTH_TYPE: "", docker or dockercfg.
	AuthType string
	// AuthData is ECS_ENGINE_AUTH_DATA: registry credentials as JSON.
	AuthData Secret
	// InsecureRegistries is BERTH_INSECURE_REGISTRIES: registries (host or
	// host:port) reached over plain HTTP.
	InsecureRegistries []string
	// ECRRegistries is BERTH_ECR_REGISTRIES: registries (host or host:port)
	// that take ECR GetAuthorizationToken logins, each mapped to the base
	// URL of that API; tasks pull from them with their execution role's
	// token, as from *.dkr.ecr.*.amazonaws.com.
	ECRRegistries map[string]string
	// CleanupDisabled is ECS_DISABLE_IMAGE_CLEANUP.
	CleanupDisabled bool
	// CleanupInterval is ECS_IMAGE_CLEANUP_INTERVAL.
	CleanupInterval time.Duration
	// MinimumCleanupAge is ECS_IMAGE_MINIMUM_CLEANUP_AGE.
	MinimumCleanupAge time.Duration
	// DeletePerCycle is ECS_NUM_IMAGES_DELETE_PER_CYCLE.
	DeletePerCycle int
	// ManifestPullTimeout is ECS_MANIFEST_PULL_TIMEOUT: the limit on
	// resolving an image's manifest.
	ManifestPullTimeout time.Duration
	// UntrackedCleanup is ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP: also remove
	// images and containers that no task of this agent uses.
	UntrackedCleanup bool
	// ExcludeUntracked is ECS_EXCLUDE_UNTRACKED_IMAGE: images that untracked
	// cleanup keeps.
	ExcludeUntracked []string
	// UntrackedMinimumAge is NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE.
	UntrackedMinimumAge time.Duration
	// UntrackedContainersPerCycle is NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE.
	UntrackedContainersPerCycle int
}

// InstanceConfig is what the container instance registers with.
type InstanceConfig struct {
	// Attributes is ECS_INSTANCE_ATTRIBUTES: custom attributes.
	Attributes map[string]string
	// Tags is ECS_CONTAINER_INSTANCE_TAGS: tags on the container instance.
	Tags map[string]string
	// DetailedOSFamily is ECS_DETAILED_OS_FAMILY: the ecs.os-type-detailed
	// attribute; empty means it is read from /etc/os-release (ID_VERSION_ID).
	DetailedOSFamily string
	// External is ECS_EXTERNAL: the instance runs outside EC2 (ECS Anywhere).
	External bool
	// CredentialProfile is ECS_ALTERNATE_CREDENTIAL_PROFILE: the profile
	// of the shared credentials file the agent's own credentials come from.
	CredentialProfile string
	// WarmPoolsCheck is ECS_WARM_POOLS_CHECK: wait until an Auto Scaling
	// warm pool instance is InService before registering.
	WarmPoolsCheck bool
}

// IAMConfig is task IAM roles and the task metadata endpoint.
type IAMConfig struct {
	// EnableTaskRole is ECS_ENABLE_TASK_IAM_ROLE.
	EnableTaskRole bool
	// EnableTaskRoleNetworkHost is ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST.
	EnableTaskRoleNetworkHost bool
	// AuditLogFile is ECS_AUDIT_LOGFILE: the credentials audit log. Use
	// AuditLog for the effective path.
	AuditLogFile string
	// AuditLogDisabled is ECS_AUDIT_LOGFILE_DISABLED.
	AuditLogDisabled bool
	// DisableTaskMetadataAZ is ECS_DISABLE_TASK_METADATA_AZ: task metadata
	// leaves out AvailabilityZone.
	DisableTaskMetadataAZ bool
	// MetadataRateLimit is ECS_TASK_METADATA_RPS_LIMIT.
	MetadataRateLimit RateLimit
	// AWSVPCBlockIMDS is ECS_AWSVPC_BLOCK_IMDS: awsvpc tasks cannot reach 169.254.169.254.
	AWSVPCBlockIMDS bool
}

// ContainerdConfig is how the agent reaches containerd.
type ContainerdConfig struct {
	// Address is BERTH_CONTAINERD_ADDRESS: containerd's socket.
	Address string
	// Namespace is BERTH_CONTAINERD_NAMESPACE.
	Namespace string
}

// NetworkConfig is container networking.
type NetworkConfig struct {
	// Datapath is BERTH_NETWORK_DATAPATH: builtin or cni.
	Datapath string
	// CNIPath is BERTH_CNI_PATH: directories searched for CNI plugins, in order.
	CNIPath []string
	// BridgeName is BERTH_BRIDGE_NAME: the bridge for bridge-mode tasks.
	BridgeName string
	// BridgeSubnet is BERTH_BRIDGE_SUBNET: the bridge's IPv4 subnet.
	BridgeSubnet netip.Prefix
	// IPCompatibility is ECS_INSTANCE_IP_COMPATIBILITY: ipv4 (ipv6 is refused).
	IPCompatibility string
	// AWSVPCLocalRoutes is ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES: prefixes
	// awsvpc tasks reach through the host bridge.
	AWSVPCLocalRoutes []netip.Prefix
	// HostAddress is BERTH_HOST_ADDRESS: where load balancers reach task
	// host ports (the berth.host-address attribute); invalid when unset.
	HostAddress netip.Addr
}

// ListenConfig is the agent's own listening addresses.
type ListenConfig struct {
	// Introspection is BERTH_INTROSPECTION_ADDRESS.
	Introspection netip.AddrPort
	// Credentials is BERTH_CREDENTIALS_ADDRESS: credentials and task metadata.
	Credentials netip.AddrPort
	// OffhostIntrospection is ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS: when
	// BERTH_INTROSPECTION_ADDRESS is not set, listen on 0.0.0.0:51678.
	OffhostIntrospection bool
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	First, Last uint16
}

// String renders the range as "first-last".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Contains reports whether port lies in the range.
func (r PortRange) Contains(port uint16) bool { return port >= r.First && port <= r.Last }

// RateLimit is a steady requests-per-second rate and a burst size.
type RateLimit struct {
	RPS, Burst int
}

// Secret is a string that must never be printed or logged. Every formatting
// path (%v, %s, %q, %#v, JSON, text) shows "<redacted>"; Reveal returns the
// value for the one place that needs it.
type Secret string

// Redacted is what a set secret prints as.
const Redacted = "<redacted>"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String returns "<redacted>" for a set secret and "" otherwise.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// Format makes every fmt verb, including %#v and %d, print String() rather
// than the value.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalText keeps encoders from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Region returns AWS_REGION, or AWS_DEFAULT_REGION when AWS_REGION is unset.
func (c *Config) Region() string {
	if c.AWS.Region != "" {
		return c.AWS.Region
	}
	return c.AWS.DefaultRegion
}

// AuditLog returns the credentials audit log path, or "" when
// ECS_AUDIT_LOGFILE_DISABLED turns it off.
func (c *Config) AuditLog() string {
	if c.IAM.AuditLogDisabled {
		return ""
	}
	return c.IAM.AuditLogFile
}

// Source returns where the value of the key named by its environment name
// came from; unknown keys report SourceDefault.
func (c *Config) Source(key string) Source {
	return c.sources[key]
}

// SourceKind says which source supplied a value.
type SourceKind int

const (
	// SourceDefault is the built-in default.
	SourceDefault SourceKind = iota
	// SourceTOML is the TOML file.
	SourceTOML
	// SourceFile is the ecs.config file.
	SourceFile
	// SourceEnv is the process environment.
	SourceEnv
)

// Source is where one value came from.
type Source struct {
	Kind SourceKind
	// Path is the file for SourceFile and SourceTOML.
	Path string
	// Line is the 1-based line in Path, or 0 when unknown.
	Line int
}

// String renders the source as "default", "environment", "path:line" or "path".
func (s Source) String() string {
	switch s.Kind {
	case SourceEnv:
		return "environment"
	case SourceFile, SourceTOML:
		if s.Line > 0 {
			return fmt.Sprintf("%s:%d", s.Path, s.Line)
		}
		return s.Path
	default:
		return "default"
	}
}
