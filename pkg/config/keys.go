package config

import (
	"net/netip"
	"strings"
	"time"
)

// Key describes one setting: one row of the key table and of the table in
// docs/configuration.md.
type Key struct {
	// Name is the environment and ecs.config name, e.g. ECS_RESERVED_PORTS.
	Name string
	// TOMLName is the name in the TOML file: Name lowercased without its
	// ECS_ or BERTH_ prefix, e.g. reserved_ports.
	TOMLName string
	// Type is a short description of the accepted values.
	Type string
	// Default is the built-in default in environment syntax; "" means unset.
	Default string
	// Doc says what the setting means, in one sentence.
	Doc string
	// Secret keys are never printed or logged.
	Secret bool

	want  string
	shape tomlShape
	// set parses text into the key's field of c.
	set func(c *Config, text string) error
	// get renders the key's field of c in environment syntax.
	get func(c *Config) string
}

// define builds a Key whose value lives in the field that field points to.
func define[T any](name string, t valueType[T], dflt string, field func(*Config) *T, doc string) Key {
	return Key{
		Name:     name,
		TOMLName: tomlName(name),
		Type:     t.name,
		Default:  dflt,
		Doc:      doc,
		Secret:   t.secret,
		want:     t.want,
		shape:    t.toml,
		set: func(c *Config, text string) error {
			v, err := t.parse(text)
			if err != nil {
				return err
			}
			*field(c) = v
			return nil
		},
		get: func(c *Config) string { return t.format(*field(c)) },
	}
}

// tomlName derives a key's TOML name from its environment name.
func tomlName(env string) string {
	for _, prefix := range []string{"ECS_", "BERTH_"} {
		if rest, ok := strings.CutPrefix(env, prefix); ok {
			return strings.ToLower(rest)
		}
	}
	return strings.ToLower(env)
}

// Keys returns the key table: every setting the agent reads, in the order of
// docs/configuration.md. The slice is new on every call.
//
// To add a setting: add a Config field, a row here (defaults equal the ECS
// agent's when ECS has the setting), and a row in docs/configuration.md
// (TestDocMatchesKeys prints the expected row).
func Keys() []Key {
	return []Key{
		// Cluster and identity.
		define("ECS_CLUSTER", stringType("string", "a cluster name (1-255 letters, digits, - and _) or ARN", checkCluster),
			"default", func(c *Config) *string { return &c.Cluster }, "Cluster to register the container instance into."),
		define("ECS_BACKEND_HOST", backendHostType(), "", func(c *Config) *string { return &c.BackendHost },
			"ECS API endpoint (URL or host); unset means the AWS endpoint for the region."),
		define("AWS_REGION", stringType("string", "a region name (letters, digits and -, e.g. us-east-1)", checkRegion), "",
			func(c *Config) *string { return &c.AWS.Region }, "Region of the cluster; wins over AWS_DEFAULT_REGION."),
		define("AWS_DEFAULT_REGION", stringType("string", "a region name (letters, digits and -, e.g. us-east-1)", checkRegion), "",
			func(c *Config) *string { return &c.AWS.DefaultRegion }, "Region used when AWS_REGION is unset."),
		define("AWS_ACCESS_KEY_ID", anyString(), "", func(c *Config) *string { return &c.AWS.AccessKeyID },
			"Static AWS access key; unset means the standard AWS credential chain."),
		define("AWS_SECRET_ACCESS_KEY", secretType("a string", nil), "", func(c *Config) *Secret { return &c.AWS.SecretAccessKey },
			"Secret key for AWS_ACCESS_KEY_ID; never printed."),
		define("AWS_SESSION_TOKEN", secretType("a string", nil), "", func(c *Config) *Secret { return &c.AWS.SessionToken },
			"Session token for temporary credentials; never printed."),

		// Agent state and logging.
		define("ECS_DATADIR", absPath(), "/var/lib/berth", func(c *Config) *string { return &c.DataDir },
			"Directory for berth.db, container logs and task volumes."),
		define("ECS_CHECKPOINT", boolType(), "true", func(c *Config) *bool { return &c.Checkpoint },
			"Persist agent state so that a restart recovers running tasks. Berth always does; `false` earns a warning."),
		define("ECS_LOGLEVEL", enumType("log level", "debug", "info", "warn", "error", "crit"), "info",
			func(c *Config) *string { return &c.Log.Level }, "Agent log level."),
		define("ECS_LOGFILE", absPath(), "", func(c *Config) *string { return &c.Log.File },
			"File the agent logs to (appended); unset means standard error."),
		define("ECS_LOG_OUTPUT_FORMAT", enumType("log format", "logfmt", "json"), "logfmt",
			func(c *Config) *string { return &c.Log.Format }, "Agent log line format."),

		// Host ports.
		define("ECS_RESERVED_PORTS", portListType(), "[22,2375,2376,51678,51679]",
			func(c *Config) *[]uint16 { return &c.Ports.Reserved }, "TCP host ports that tasks may not use."),
		define("ECS_RESERVED_PORTS_UDP", portListType(), "[]",
			func(c *Config) *[]uint16 { return &c.Ports.ReservedUDP }, "UDP host ports that tasks may not use."),
		define("ECS_DYNAMIC_HOST_PORT_RANGE", portRangeType(), "49153-65535",
			func(c *Config) *PortRange { return &c.Ports.DynamicRange }, "Range that host ports are allocated from when hostPort is 0 or absent."),
		define("BERTH_RESERVE_DYNAMIC_PORTS", boolType(), "false",
			func(c *Config) *bool { return &c.Ports.ReserveDynamic }, "Report the whole dynamic port range as reserved to the cluster."),

		// Containers.
		define("ECS_RESERVED_MEMORY", intType(0, 1<<30), "0", func(c *Config) *int { return &c.Containers.ReservedMemoryMiB },
			"MiB of memory not offered to tasks."),
		define("ECS_AVAILABLE_LOGGING_DRIVERS", jsonStringListType("JSON array of strings",
			"a JSON array of logging driver names", checkLoggingDriver), `["json-file","none"]`,
			func(c *Config) *[]string { return &c.Containers.AvailableLoggingDrivers }, "Log drivers the instance advertises to the cluster."),
		define("BERTH_AWSLOGS_ENDPOINT", stringType("string", `empty, "cluster", or an http(s) URL`, checkAWSLogsEndpoint), "",
			func(c *Config) *string { return &c.Containers.AWSLogsEndpoint },
			`CloudWatch Logs endpoint for awslogs containers that set no awslogs-endpoint: "cluster" means the cluster endpoint's log store, empty means AWS.`),
		define("ECS_DISABLE_PRIVILEGED", boolType(), "false", func(c *Config) *bool { return &c.Containers.DisablePrivileged },
			"Refuse tasks with privileged containers."),
		define("ECS_CONTAINER_STOP_TIMEOUT", durationType(time.Second), "30s",
			func(c *Config) *time.Duration { return &c.Containers.StopTimeout }, "Time between the stop signal and SIGKILL when a task has no stopTimeout."),
		define("ECS_CONTAINER_START_TIMEOUT", durationType(time.Second), "3m",
			func(c *Config) *time.Duration { return &c.Containers.StartTimeout }, "Time allowed for starting a container."),
		define("ECS_CONTAINER_CREATE_TIMEOUT", durationType(time.Second), "4m",
			func(c *Config) *time.Duration { return &c.Containers.CreateTimeout }, "Time allowed for creating a container."),
		define("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", durationType(time.Minute), "3h",
			func(c *Config) *time.Duration { return &c.Containers.TaskCleanupWait }, "Time a stopped task's containers are kept before cleanup."),

		// Images and registries.
		define("ECS_IMAGE_PULL_BEHAVIOR", enumType("pull behavior", "default", "always", "once", "prefer-cached"), "default",
			func(c *Config) *string { return &c.Images.PullBehavior }, "When to pull an image that is already present."),
		define("ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", durationType(time.Second), "1m",
			func(c *Config) *time.Duration { return &c.Images.PullInactivityTimeout }, "A pull that makes no progress for this long is cancelled."),
		define("ECS_IMAGE_PULL_TIMEOUT", durationType(time.Second), "2h",
			func(c *Config) *time.Duration { return &c.Images.PullTimeout }, "Upper limit on one image pull."),
		define("ECS_ENGINE_AUTH_TYPE", enumType("auth type", "docker", "dockercfg"), "",
			func(c *Config) *string { return &c.Images.AuthType }, "Format of ECS_ENGINE_AUTH_DATA."),
		define("ECS_ENGINE_AUTH_DATA", secretType("a JSON object keyed by registry", checkAuthData), "",
			func(c *Config) *Secret { return &c.Images.AuthData }, "Private registry credentials as JSON; never printed."),
		define("BERTH_INSECURE_REGISTRIES", jsonStringListType("JSON array of strings",
			"a JSON array of registry hosts (host or host:port)", checkRegistryHost), "[]",
			func(c *Config) *[]string { return &c.Images.InsecureRegistries }, "Registries reached over plain HTTP."),
		define("BERTH_ECR_REGISTRIES", jsonStringMapType("JSON object",
			"a JSON object mapping registry hosts to http(s) URLs", checkECRRegistry), "{}",
			func(c *Config) *map[string]string { return &c.Images.ECRRegistries },
			"ECR-compatible registries: host (or host:port) → base URL of their GetAuthorizationToken API; pulls from them use the task's execution role."),
		define("ECS_DISABLE_IMAGE_CLEANUP", boolType(), "false", func(c *Config) *bool { return &c.Images.CleanupDisabled },
			"Turn off automatic removal of unused images."),
		define("ECS_IMAGE_CLEANUP_INTERVAL", durationType(10*time.Minute), "30m",
			func(c *Config) *time.Duration { return &c.Images.CleanupInterval }, "Time between image cleanup cycles."),
		define("ECS_IMAGE_MINIMUM_CLEANUP_AGE", durationType(0), "1h",
			func(c *Config) *time.Duration { return &c.Images.MinimumCleanupAge }, "Minimum time since an image was pulled before it may be removed."),
		define("ECS_NUM_IMAGES_DELETE_PER_CYCLE", intType(1, 1000), "5",
			func(c *Config) *int { return &c.Images.DeletePerCycle }, "Images removed per cleanup cycle at most."),

		// Container instance registration.
		define("ECS_INSTANCE_ATTRIBUTES", jsonStringMapType("JSON object",
			"a JSON object of attribute names to values", checkAttribute), "{}",
			func(c *Config) *map[string]string { return &c.Instance.Attributes }, "Custom attributes registered with the container instance."),
		define("ECS_CONTAINER_INSTANCE_TAGS", jsonStringMapType("JSON object",
			"a JSON object of tag keys to values", checkTag), "{}",
			func(c *Config) *map[string]string { return &c.Instance.Tags }, "Tags registered with the container instance."),

		// Task IAM roles and metadata.
		define("ECS_ENABLE_TASK_IAM_ROLE", boolType(), "false", func(c *Config) *bool { return &c.IAM.EnableTaskRole },
			"Serve task role credentials to bridge and awsvpc tasks."),
		define("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", boolType(), "false", func(c *Config) *bool { return &c.IAM.EnableTaskRoleNetworkHost },
			"Also serve task role credentials to host-network tasks."),
		define("ECS_AUDIT_LOGFILE", absPath(), "/var/log/ecs/audit.log", func(c *Config) *string { return &c.IAM.AuditLogFile },
			"Audit log of credential requests."),
		define("ECS_TASK_METADATA_RPS_LIMIT", rateLimitType(), "40,60",
			func(c *Config) *RateLimit { return &c.IAM.MetadataRateLimit }, "Steady rate and burst of task metadata and credential requests per task."),
		define("ECS_AWSVPC_BLOCK_IMDS", boolType(), "false", func(c *Config) *bool { return &c.IAM.AWSVPCBlockIMDS },
			"Block awsvpc tasks from the instance metadata service."),

		// Berth's runtime and network.
		define("BERTH_CONTAINERD_ADDRESS", absPath(), "/run/containerd/containerd.sock",
			func(c *Config) *string { return &c.Containerd.Address }, "containerd's socket."),
		define("BERTH_CONTAINERD_NAMESPACE", stringType("string", "a containerd namespace name (letters, digits, . _ -)", checkNamespace), "berth",
			func(c *Config) *string { return &c.Containerd.Namespace }, "containerd namespace that holds the agent's images and containers."),
		define("BERTH_CNI_PATH", pathListType(), "/usr/lib/cni:/opt/cni/bin",
			func(c *Config) *[]string { return &c.Network.CNIPath }, "Directories searched for CNI plugins, in order."),
		define("BERTH_BRIDGE_NAME", stringType("string", "a network interface name (1-15 characters, no / : or spaces)", checkInterfaceName), "berth0",
			func(c *Config) *string { return &c.Network.BridgeName }, "Bridge that bridge-mode tasks attach to."),
		define("BERTH_BRIDGE_SUBNET", subnetType(), "10.203.0.0/16",
			func(c *Config) *netip.Prefix { return &c.Network.BridgeSubnet }, "IPv4 subnet of the bridge."),
		define("BERTH_INTROSPECTION_ADDRESS", addrPortType(), "127.0.0.1:51678",
			func(c *Config) *netip.AddrPort { return &c.Listen.Introspection }, "Listen address of the introspection API."),
		define("BERTH_CREDENTIALS_ADDRESS", addrPortType(), "127.0.0.1:51679",
			func(c *Config) *netip.AddrPort { return &c.Listen.Credentials }, "Listen address of the credentials and task metadata API (tasks reach it as 169.254.170.2:80)."),
	}
}
