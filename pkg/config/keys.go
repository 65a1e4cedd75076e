package config

import (
	"fmt"
	"net/netip"
	"slices"
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
	// Status says how Berth treats an upstream key (docs/ecs-compatibility.md).
	Status Status
	// Note is the difference (StatusDifferent), the missing part
	// (StatusNotEnforced) or the reason (StatusRefused), in one sentence.
	Note string
	// Upstream is true for keys the Amazon ECS agent or ecs-init read; they
	// are the rows of docs/ecs-compatibility.md's "ecs.config keys".
	Upstream bool
	// PackageDefault is the value the berth-agent package sets in
	// /etc/berth/agent.toml, as ecs-init does on an ECS-optimised host; ""
	// means the package leaves the built-in Default.
	PackageDefault string

	want  string
	shape tomlShape
	// set parses text into the key's field of c.
	set func(c *Config, text string) error
	// get renders the key's field of c in environment syntax.
	get func(c *Config) string
	// check runs after every source was read, for keys that some source
	// set: it may adjust the value (clamps) and returns a warning, or "".
	check func(c *Config) string
}

// define builds a Key whose value lives in the field that field points to.
func define[T any](name string, t valueType[T], dflt string, field func(*Config) *T, doc string) Key {
	status := StatusHonoured
	if strings.HasPrefix(name, "BERTH_") {
		status = StatusBerth
	}
	return Key{
		Name:     name,
		TOMLName: tomlName(name),
		Type:     t.name,
		Default:  dflt,
		Doc:      doc,
		Secret:   t.secret,
		Status:   status,
		Upstream: status != StatusBerth,
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

// differs marks k as honoured with the difference note.
func (k Key) differs(note string) Key {
	k.Status, k.Note = StatusDifferent, note
	return k
}

// notEnforced marks k as accepted but not applied yet: when some source
// sets it and asks(c) is true, Load warns that what is not enforced.
func (k Key) notEnforced(what string, asks func(c *Config) bool) Key {
	k.Status, k.Note = StatusNotEnforced, what
	k.check = func(c *Config) string {
		if asks(c) {
			return notEnforcedMessage(what)
		}
		return ""
	}
	return k
}

// withStatus sets k's status and note.
func (k Key) withStatus(s Status, note string) Key {
	k.Status, k.Note = s, note
	return k
}

// checked adds a check that runs when some source sets k.
func (k Key) checked(check func(c *Config) string) Key {
	k.check = check
	return k
}

// packaged records the value the berth-agent package sets (PackageDefault).
func (k Key) packaged(v string) Key {
	k.PackageDefault = v
	return k
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
// docs/configuration.md, followed by the upstream keys Berth accepts but does
// not apply (unsupportedKeys). The slice is new on every call.
//
// To add a setting: add a Config field, a row here (defaults equal the ECS
// agent's when ECS has the setting, with its Status), and run
// `go test ./pkg/config -run 'Doc' -update` to regenerate the tables in
// docs/configuration.md and docs/ecs-compatibility.md.
func Keys() []Key {
	keys := []Key{
		// Cluster and identity.
		define("ECS_CLUSTER", stringType("string", "a cluster name (1-255 letters, digits, - and _) or ARN", checkCluster),
			"default", func(c *Config) *string { return &c.Cluster }, "Cluster to register the container instance into."),
		define("ECS_BACKEND_HOST", backendHostType(), "", func(c *Config) *string { return &c.BackendHost },
			"ECS API endpoint (URL or host); unset means the AWS endpoint for the region."),
		define("AWS_REGION", stringType("string", "a region name (letters, digits and -, e.g. us-east-1)", checkRegion), "",
			func(c *Config) *string { return &c.AWS.Region }, "Region of the cluster; wins over AWS_DEFAULT_REGION."),
		define("AWS_DEFAULT_REGION", stringType("string", "a region name (letters, digits and -, e.g. us-east-1)", checkRegion), "",
			func(c *Config) *string { return &c.AWS.DefaultRegion }, "Region used when AWS_REGION is unset.").
			differs("The ECS agent reads the region from EC2 instance metadata when it is unset; Berth needs AWS_REGION or AWS_DEFAULT_REGION."),
		define("AWS_ACCESS_KEY_ID", anyString(), "", func(c *Config) *string { return &c.AWS.AccessKeyID },
			"Static AWS access key; unset means the standard AWS credential chain."),
		define("AWS_SECRET_ACCESS_KEY", secretType("a string", nil), "", func(c *Config) *Secret { return &c.AWS.SecretAccessKey },
			"Secret key for AWS_ACCESS_KEY_ID; never printed."),
		define("AWS_SESSION_TOKEN", secretType("a string", nil), "", func(c *Config) *Secret { return &c.AWS.SessionToken },
			"Session token for temporary credentials; never printed."),
		define("ECS_EXTERNAL", boolType(), "false", func(c *Config) *bool { return &c.Instance.External },
			"The instance runs outside EC2 (ECS Anywhere): the agent's credentials come from the shared credentials file, read again every minute.").
			differs("Berth never uses EC2 instance metadata, external or not; the `external` capability is not registered yet (registration)."),
		define("ECS_ALTERNATE_CREDENTIAL_PROFILE", stringType("string", "a profile name", nil), "default",
			func(c *Config) *string { return &c.Instance.CredentialProfile },
			"Profile of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) that the agent's credentials come from when AWS_ACCESS_KEY_ID is unset; setting it (or ECS_EXTERNAL) selects the file, read again every minute.").
			differs("Without ECS_EXTERNAL or this key set, the SDK's standard chain (which reads the file once) is used, where the ECS agent falls back to the file after it."),
		define("ECS_DETAILED_OS_FAMILY", stringType("string", "an OS family such as debian_12", nil), "",
			func(c *Config) *string { return &c.Instance.DetailedOSFamily },
			"The ecs.os-type-detailed attribute; unset means ID_VERSION_ID from /etc/os-release, as ecs-init sets it."),
		define("ECS_WARM_POOLS_CHECK", boolType(), "false", func(c *Config) *bool { return &c.Instance.WarmPoolsCheck },
			"Wait until an EC2 Auto Scaling warm pool instance is InService before registering.").
			notEnforced("registration does not yet wait for the instance metadata target-lifecycle-state InService", enabled(func(c *Config) bool { return c.Instance.WarmPoolsCheck })),

		// Agent state and logging.
		define("ECS_DATADIR", absPath(), "/var/lib/berth", func(c *Config) *string { return &c.DataDir },
			"Directory for berth.db, container logs and task volumes.").
			differs("Default /var/lib/berth (the ECS agent's is /var/lib/ecs/data on the host); the state format is Berth's own."),
		define("ECS_CHECKPOINT", boolType(), "true", func(c *Config) *bool { return &c.Checkpoint },
			"Persist agent state so that a restart recovers running tasks. Berth always does; `false` earns a warning.").
			differs("Berth always persists state; false earns a warning."),
		define("ECS_LOGLEVEL", logLevelType(), "info",
			func(c *Config) *string { return &c.Log.Level }, "Agent log level (`none` turns logging off)."),
		define("ECS_LOGLEVEL_ON_INSTANCE", logLevelType(), "",
			func(c *Config) *string { return &c.Log.FileLevel }, "Log level of ECS_LOGFILE; unset means ECS_LOGLEVEL.").
			differs("Berth logs either to standard error or to ECS_LOGFILE, so this is the agent's level whenever ECS_LOGFILE is set."),
		define("ECS_LOGFILE", absPath(), "", func(c *Config) *string { return &c.Log.File },
			"File the agent logs to (appended, rotated as below); unset means standard error (the journal under systemd).").
			differs("ecs-init sets /var/log/ecs/ecs-agent.log; the berth-agent unit logs to the journal instead, and with a file set nothing goes to standard error."),
		define("ECS_LOG_OUTPUT_FORMAT", enumType("log format", "logfmt", "json"), "logfmt",
			func(c *Config) *string { return &c.Log.Format }, "Agent log line format."),
		define("ECS_LOG_ROLLOVER_TYPE", enumType("rollover type", "size", "hourly", "date", "none"), "size",
			func(c *Config) *string { return &c.Log.RolloverType }, "How ECS_LOGFILE is rotated: by size, every hour (`date` is the same), or not at all.").
			differs("Rotated files are named FILE-TIMESTAMP (lumberjack) instead of the ECS agent's FILE.N or FILE.YYYY-MM-DD-HH."),
		define("ECS_LOG_MAX_FILE_SIZE_MB", positiveFloatType(), "5",
			func(c *Config) *float64 { return &c.Log.MaxFileSizeMB }, "With rollover type size, ECS_LOGFILE is rotated when it would grow past this many MB.").
			differs("Counted in whole MiB (a fraction is rounded up), where the ECS agent counts 1,000,000-byte MB."),
		define("ECS_LOG_MAX_ROLL_COUNT", intType(1, 100000), "24",
			func(c *Config) *int { return &c.Log.MaxRollCount }, "Rotated log files kept."),

		// Host ports.
		define("ECS_RESERVED_PORTS", portListType(), "[22,2375,2376,51678,51679]",
			func(c *Config) *[]uint16 { return &c.Ports.Reserved }, "TCP host ports that tasks may not use."),
		define("ECS_RESERVED_PORTS_UDP", portListType(), "[]",
			func(c *Config) *[]uint16 { return &c.Ports.ReservedUDP }, "UDP host ports that tasks may not use."),
		define("ECS_DYNAMIC_HOST_PORT_RANGE", portRangeType(), "49153-65535",
			func(c *Config) *PortRange { return &c.Ports.DynamicRange }, "Range that host ports are allocated from when hostPort is 0 or absent.").
			differs("The default is fixed; the ECS agent's is the host's net.ipv4.ip_local_port_range."),
		define("BERTH_RESERVE_DYNAMIC_PORTS", boolType(), "false",
			func(c *Config) *bool { return &c.Ports.ReserveDynamic }, "Report the whole dynamic port range as reserved to the cluster."),
		define("ECS_EXCLUDE_IPV6_PORTBINDING", boolType(), "true", func(c *Config) *bool { return &c.Ports.ExcludeIPv6Bindings },
			"Leave IPv6 host port bindings out of state changes.").
			differs("Berth binds host ports on IPv4 only, so there are no IPv6 bindings to report; false earns a warning.").
			checked(func(c *Config) string {
				if !c.Ports.ExcludeIPv6Bindings {
					return notEnforcedMessage("host ports are bound on IPv4 only, so no IPv6 binding is reported")
				}
				return ""
			}),
		define("ECS_INSTANCE_IP_COMPATIBILITY", enumType("IP compatibility", "ipv4", "ipv6"), "ipv4",
			func(c *Config) *string { return &c.Network.IPCompatibility }, "IP versions of the instance's default network.").
			differs("Berth runs IPv4 and dual-stack instances (ipv4); ipv6 (an IPv6-only instance) is refused with a warning.").
			checked(func(c *Config) string {
				if c.Network.IPCompatibility == "ipv6" {
					return refusedMessage("IPv6-only instances need IPv6 task networking, which Berth lacks; using ipv4")
				}
				return ""
			}),

		// Containers.
		define("ECS_RESERVED_MEMORY", intType(0, 1<<30), "0", func(c *Config) *int { return &c.Containers.ReservedMemoryMiB },
			"MiB of memory not offered to tasks."),
		define("ECS_AVAILABLE_LOGGING_DRIVERS", jsonStringListType("JSON array of strings",
			"a JSON array of logging driver names", checkLoggingDriver), `["json-file","none"]`,
			func(c *Config) *[]string { return &c.Containers.AvailableLoggingDrivers }, "Log drivers the instance advertises to the cluster.").
			packaged(`["json-file","syslog","awslogs","fluentd","journald","none"]`).
			differs("Berth ships json-file, none, syslog, journald, fluentd and awslogs; gelf, splunk, logentries and awsfirelens are accepted, not advertised, and earn a warning.").
			checked(checkShippedDrivers),
		define("BERTH_AWSLOGS_ENDPOINT", stringType("string", `empty, "cluster", or an http(s) URL`, checkAWSLogsEndpoint), "",
			func(c *Config) *string { return &c.Containers.AWSLogsEndpoint },
			`CloudWatch Logs endpoint for awslogs containers that set no awslogs-endpoint: "cluster" means the cluster endpoint's log store, empty means AWS.`),
		define("ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE", boolType(), "false",
			func(c *Config) *bool { return &c.Containers.AWSLogsExecutionRole }, "awslogs ships with the task's execution role when the task has one.").
			packaged("true").
			differs("Berth holds execution role credentials only with ECS_ENABLE_TASK_IAM_ROLE=true; without it awslogs uses the agent's own credentials and this earns a warning.").
			checked(func(c *Config) string {
				if c.Containers.AWSLogsExecutionRole && !c.IAM.EnableTaskRole {
					return notEnforcedMessage("execution role credentials reach Berth only with ECS_ENABLE_TASK_IAM_ROLE=true; awslogs uses the agent's own credentials")
				}
				return ""
			}),
		define("ECS_DISABLE_PRIVILEGED", boolType(), "false", func(c *Config) *bool { return &c.Containers.DisablePrivileged },
			"Refuse tasks with privileged containers."),
		define("ECS_SELINUX_CAPABLE", boolType(), "false", func(c *Config) *bool { return &c.Containers.SELinuxCapable },
			"Honour `label:` dockerSecurityOptions (SELinux process and mount labels); without it a task naming one stops with a reason naming the option.").
			differs("A host without SELinux enabled refuses the option when the container is created (CannotCreateContainerError naming it)."),
		define("ECS_APPARMOR_CAPABLE", boolType(), "false", func(c *Config) *bool { return &c.Containers.AppArmorCapable },
			"Honour `apparmor:` dockerSecurityOptions (the container's AppArmor profile); without it a task naming one stops with a reason naming the option.").
			differs("A host without AppArmor enabled refuses the option when the container is created (CannotCreateContainerError naming it)."),
		define("ECS_CONTAINER_STOP_TIMEOUT", signedDurationType(), "30s",
			func(c *Config) *time.Duration { return &c.Containers.StopTimeout }, "Time between the stop signal and SIGKILL when a task has no stopTimeout; below 1s means 1s.").
			checked(func(c *Config) string { return clampDuration(&c.Containers.StopTimeout, time.Second) }),
		define("ECS_CONTAINER_START_TIMEOUT", signedDurationType(), "3m",
			func(c *Config) *time.Duration { return &c.Containers.StartTimeout }, "Time allowed for starting a container; below 45s means 45s.").
			checked(func(c *Config) string { return clampDuration(&c.Containers.StartTimeout, 45*time.Second) }),
		define("ECS_CONTAINER_CREATE_TIMEOUT", signedDurationType(), "4m",
			func(c *Config) *time.Duration { return &c.Containers.CreateTimeout }, "Time allowed for creating a container; below 1m means 1m.").
			checked(func(c *Config) string { return clampDuration(&c.Containers.CreateTimeout, time.Minute) }),
		define("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION", signedDurationType(), "3h",
			func(c *Config) *time.Duration { return &c.Containers.TaskCleanupWait }, "Time a stopped task's containers are kept before cleanup; below 1s means the default.").
			checked(func(c *Config) string { return resetDuration(&c.Containers.TaskCleanupWait, time.Second, 3*time.Hour) }),
		define("ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER", durationType(0), "0s",
			func(c *Config) *time.Duration { return &c.Containers.TaskCleanupJitter }, "Random extra wait, up to this long, added to each task's cleanup wait.").
			notEnforced("stopped tasks are cleaned up without the extra random wait", func(c *Config) bool { return c.Containers.TaskCleanupJitter > 0 }),
		define("ECS_ENABLE_CONTAINER_METADATA", boolType(), "false", func(c *Config) *bool { return &c.Containers.ContainerMetadata },
			"Write each container's metadata file and set ECS_CONTAINER_METADATA_FILE in it.").
			notEnforced("no container metadata file is written and ECS_CONTAINER_METADATA_FILE is not set", enabled(func(c *Config) bool { return c.Containers.ContainerMetadata })),
		define("ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT", boolType(), "true", func(c *Config) *bool { return &c.Containers.PullDependentUpfront },
			"Pull the images of containers with dependsOn before their dependencies are met.").
			differs("The ECS agent's default is false; Berth always pulls every image of a task when the task arrives, so false earns a warning.").
			checked(func(c *Config) string {
				if !c.Containers.PullDependentUpfront {
					return notEnforcedMessage("every image of a task is pulled when the task arrives")
				}
				return ""
			}),

		// Container metrics.
		define("ECS_DISABLE_METRICS", boolType(), "false", func(c *Config) *bool { return &c.Metrics.Disabled },
			"Turn off container metrics: nothing is sampled and no PublishMetricsRequest is sent on TCS (task metadata /stats then reads containers on request)."),
		define("ECS_POLLING_METRICS_WAIT_DURATION", signedDurationType(), "10s",
			func(c *Config) *time.Duration { return &c.Metrics.PollInterval },
			"Time between two samples of every running container's CPU, memory, network and block I/O; outside 5s-20s means the nearest bound.").
			checked(checkPollInterval),

		// Task-level resources.
		define("ECS_ENABLE_TASK_CPU_MEM_LIMIT", boolType(), "true", func(c *Config) *bool { return &c.Tasks.CPUMemLimit },
			"Task-level cpu and memory bound all containers of the task through a task cgroup (cpu quota = cpu/1024 × ECS_CGROUP_CPU_PERIOD, memory limit = memory).").
			differs("A task gets a task cgroup only when it sets task-level cpu or memory (or ECS_TASK_PIDS_LIMIT is set); the ECS agent makes one for every task, with the sum of its containers' cpu shares when the task sets no cpu. Needs cgroup v2 or the cgroup v1 cpu, memory and pids controllers; on a host without them task-cpu-mem-limit is not registered and tasks keep per-container limits."),
		define("ECS_CGROUP_CPU_PERIOD", signedDurationType(), "100ms", func(c *Config) *time.Duration { return &c.Tasks.CgroupCPUPeriod },
			"CFS period of task-level cpu limits (8ms-100ms; outside that, the default).").
			checked(checkCPUPeriod),
		define("ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2", boolType(), "false", func(c *Config) *bool { return &c.Tasks.PropagateMemoryLimit },
			"On a cgroup v2 host, a container without a memory limit gets the task's memory as its limit."),
		define("ECS_TASK_PIDS_LIMIT", intType(-1<<31, 1<<31), "0", func(c *Config) *int { return &c.Tasks.PidsLimit },
			"pids.max of each task's cgroup (1-4194304), with ECS_ENABLE_TASK_CPU_MEM_LIMIT; 0 or unset means unlimited.").
			checked(checkPidsLimit),

		// Images and registries.
		define("ECS_IMAGE_PULL_BEHAVIOR", enumType("pull behavior", "default", "always", "once", "prefer-cached"), "default",
			func(c *Config) *string { return &c.Images.PullBehavior }, "When to pull an image that is already present."),
		define("ECS_IMAGE_PULL_INACTIVITY_TIMEOUT", signedDurationType(), "1m",
			func(c *Config) *time.Duration { return &c.Images.PullInactivityTimeout }, "A pull that makes no progress for this long is cancelled; below 1m means 1m.").
			checked(func(c *Config) string { return clampDuration(&c.Images.PullInactivityTimeout, time.Minute) }),
		define("ECS_IMAGE_PULL_TIMEOUT", durationType(time.Second), "2h",
			func(c *Config) *time.Duration { return &c.Images.PullTimeout }, "Upper limit on one image pull."),
		define("ECS_MANIFEST_PULL_TIMEOUT", signedDurationType(), "1m",
			func(c *Config) *time.Duration { return &c.Images.ManifestPullTimeout }, "Upper limit on resolving an image's manifest; below 30s means 30s.").
			withStatus(StatusNotEnforced, "manifests are resolved within the pull and bounded by its timeouts").
			checked(func(c *Config) string {
				return joinWarnings(clampDuration(&c.Images.ManifestPullTimeout, 30*time.Second),
					notEnforcedMessage("manifests are resolved within the pull and bounded by its timeouts"))
			}),
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
		define("ECS_IMAGE_CLEANUP_INTERVAL", signedDurationType(), "30m",
			func(c *Config) *time.Duration { return &c.Images.CleanupInterval }, "Time between image cleanup cycles; below 10m means the default.").
			checked(func(c *Config) string {
				return resetDuration(&c.Images.CleanupInterval, 10*time.Minute, 30*time.Minute)
			}),
		define("ECS_IMAGE_MINIMUM_CLEANUP_AGE", durationType(0), "1h",
			func(c *Config) *time.Duration { return &c.Images.MinimumCleanupAge }, "Minimum time since an image was pulled before it may be removed."),
		define("ECS_NUM_IMAGES_DELETE_PER_CYCLE", intType(-1<<31, 1<<31), "5",
			func(c *Config) *int { return &c.Images.DeletePerCycle }, "Images removed per cleanup cycle at most; below 1 means the default.").
			checked(func(c *Config) string {
				if c.Images.DeletePerCycle >= 1 {
					return ""
				}
				msg := fmt.Sprintf("%d is below the minimum of 1; using the default 5, as the ECS agent does", c.Images.DeletePerCycle)
				c.Images.DeletePerCycle = 5
				return msg
			}),
		define("ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP", boolType(), "false", func(c *Config) *bool { return &c.Images.UntrackedCleanup },
			"Also remove images and stopped containers that no task of this agent uses.").
			notEnforced("image cleanup removes only the images of this agent's tasks", enabled(func(c *Config) bool { return c.Images.UntrackedCleanup })),
		define("ECS_EXCLUDE_UNTRACKED_IMAGE", commaListType(), "",
			func(c *Config) *[]string { return &c.Images.ExcludeUntracked }, "Images (name:tag, comma-separated) that untracked image cleanup keeps.").
			notEnforced("untracked image cleanup does not exist yet", func(c *Config) bool { return len(c.Images.ExcludeUntracked) > 0 }),
		define("NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE", durationType(0), "1h",
			func(c *Config) *time.Duration { return &c.Images.UntrackedMinimumAge }, "Minimum age of an untracked image before untracked cleanup may remove it.").
			notEnforced("untracked image cleanup does not exist yet", func(c *Config) bool { return true }),
		define("NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE", intType(1, 1<<31), "5",
			func(c *Config) *int { return &c.Images.UntrackedContainersPerCycle }, "Untracked stopped containers removed per cleanup cycle at most.").
			notEnforced("untracked container cleanup does not exist yet", func(c *Config) bool { return true }),

		// Container instance registration.
		define("ECS_INSTANCE_ATTRIBUTES", jsonStringMapType("JSON object",
			"a JSON object of attribute names to values", checkAttribute), "{}",
			func(c *Config) *map[string]string { return &c.Instance.Attributes }, "Custom attributes registered with the container instance."),
		define("ECS_CONTAINER_INSTANCE_TAGS", jsonStringMapType("JSON object",
			"a JSON object of tag keys to values", checkTag), "{}",
			func(c *Config) *map[string]string { return &c.Instance.Tags }, "Tags registered with the container instance."),

		// Task IAM roles and metadata.
		define("ECS_ENABLE_TASK_IAM_ROLE", boolType(), "false", func(c *Config) *bool { return &c.IAM.EnableTaskRole },
			"Serve task role credentials to bridge and awsvpc tasks.").packaged("true"),
		define("ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST", boolType(), "false", func(c *Config) *bool { return &c.IAM.EnableTaskRoleNetworkHost },
			"Also serve task role credentials to host-network tasks.").packaged("true"),
		define("ECS_AUDIT_LOGFILE", absPath(), "/var/log/ecs/audit.log", func(c *Config) *string { return &c.IAM.AuditLogFile },
			"Audit log of credential requests."),
		define("ECS_AUDIT_LOGFILE_DISABLED", boolType(), "false", func(c *Config) *bool { return &c.IAM.AuditLogDisabled },
			"Turn off the audit log of credential requests."),
		define("ECS_TASK_METADATA_RPS_LIMIT", rateLimitType(), "40,60",
			func(c *Config) *RateLimit { return &c.IAM.MetadataRateLimit }, "Steady rate and burst of task metadata and credential requests per task; a value below 1 means the default.").
			checked(func(c *Config) string {
				r := &c.IAM.MetadataRateLimit
				if r.RPS > 0 && r.Burst > 0 {
					return ""
				}
				msg := fmt.Sprintf("%d,%d is not two positive integers; using the default 40,60, as the ECS agent does", r.RPS, r.Burst)
				*r = RateLimit{RPS: 40, Burst: 60}
				return msg
			}),
		define("ECS_DISABLE_TASK_METADATA_AZ", boolType(), "false", func(c *Config) *bool { return &c.IAM.DisableTaskMetadataAZ },
			"Leave AvailabilityZone out of task metadata.").
			differs("Berth knows no availability zone and never serves one, so true changes nothing."),
		define("ECS_AWSVPC_BLOCK_IMDS", boolType(), "false", func(c *Config) *bool { return &c.IAM.AWSVPCBlockIMDS },
			"Block awsvpc tasks from the instance metadata service.").
			notEnforced("the block is installed only while ECS_ENABLE_TASK_IAM_ROLE=true",
				func(c *Config) bool { return c.IAM.AWSVPCBlockIMDS && !c.IAM.EnableTaskRole }),

		// Berth's runtime and network.
		define("BERTH_CONTAINERD_ADDRESS", absPath(), "/run/containerd/containerd.sock",
			func(c *Config) *string { return &c.Containerd.Address }, "containerd's socket."),
		define("BERTH_CONTAINERD_NAMESPACE", stringType("string", "a containerd namespace name (letters, digits, . _ -)", checkNamespace), "berth",
			func(c *Config) *string { return &c.Containerd.Namespace }, "containerd namespace that holds the agent's images and containers."),
		define("BERTH_NETWORK_DATAPATH", enumType("network datapath", "builtin", "cni"), "builtin",
			func(c *Config) *string { return &c.Network.Datapath },
			"How bridge, awsvpc and none tasks are wired: builtin (in process: netlink and one nftables table per agent) or cni (the CNI plugins bridge, host-local, portmap, firewall and loopback found on BERTH_CNI_PATH). Tasks keep the datapath they started with across a change."),
		define("BERTH_CNI_PATH", pathListType(), "/usr/lib/cni:/opt/cni/bin",
			func(c *Config) *[]string { return &c.Network.CNIPath }, "Directories searched for CNI plugins, in order (BERTH_NETWORK_DATAPATH=cni)."),
		define("BERTH_BRIDGE_NAME", stringType("string", "a network interface name (1-15 characters, no / : or spaces)", checkInterfaceName), "berth0",
			func(c *Config) *string { return &c.Network.BridgeName }, "Bridge that bridge-mode tasks attach to."),
		define("BERTH_BRIDGE_SUBNET", subnetType(), "10.203.0.0/16",
			func(c *Config) *netip.Prefix { return &c.Network.BridgeSubnet }, "IPv4 subnet of the bridge."),
		define("ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES", prefixListType(), "[]",
			func(c *Config) *[]netip.Prefix { return &c.Network.AWSVPCLocalRoutes }, "Prefixes that awsvpc tasks reach through the host bridge rather than their ENI.").
			differs("Berth's awsvpc tasks have no ENI: all their traffic already goes through the host bridge."),
		define("BERTH_INTROSPECTION_ADDRESS", addrPortType(), "127.0.0.1:51678",
			func(c *Config) *netip.AddrPort { return &c.Listen.Introspection }, "Listen address of the introspection API."),
		define("ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS", boolType(), "false", func(c *Config) *bool { return &c.Listen.OffhostIntrospection },
			"Let other hosts reach the introspection API: unless BERTH_INTROSPECTION_ADDRESS is set, it listens on 0.0.0.0:51678.").
			differs("ecs-init opens or closes access with an iptables rule; Berth chooses the listen address instead."),
		define("BERTH_CREDENTIALS_ADDRESS", addrPortType(), "127.0.0.1:51679",
			func(c *Config) *netip.AddrPort { return &c.Listen.Credentials }, "Listen address of the credentials and task metadata API (tasks reach it as 169.254.170.2:80)."),
		define("BERTH_HOST_ADDRESS", ipAddrType(), "", func(c *Config) *netip.Addr { return &c.Network.HostAddress },
			"Address at which load balancers reach this host's task host ports, registered as the berth.host-address attribute; unset: 127.0.0.1 when the endpoint is on loopback (dev mode), else the first non-loopback IPv4 address of an interface that is up."),
	}
	return append(keys, unsupportedKeys()...)
}

// enabled turns a boolean field into the asks predicate of notEnforced.
func enabled(field func(c *Config) bool) func(c *Config) bool { return field }

// checkShippedDrivers warns about logging drivers the ECS agent accepts but
// Berth cannot run, and leaves them out of the advertised list.
func checkShippedDrivers(c *Config) string {
	var kept, dropped []string
	for _, d := range c.Containers.AvailableLoggingDrivers {
		if slices.Contains(ShippedLoggingDrivers(), d) {
			kept = append(kept, d)
		} else {
			dropped = append(dropped, d)
		}
	}
	if len(dropped) == 0 {
		return ""
	}
	c.Containers.AvailableLoggingDrivers = append([]string{}, kept...)
	return fmt.Sprintf("%s: not supported by Berth (it ships %s); not advertised",
		strings.Join(dropped, ", "), strings.Join(ShippedLoggingDrivers(), ", "))
}

// ShippedLoggingDrivers are the logging drivers Berth can run (pkg/logship's
// drivers, json-file and none); a test in pkg/agent keeps the two in step.
func ShippedLoggingDrivers() []string {
	return []string{"json-file", "none", "syslog", "journald", "fluentd", "awslogs"}
}

// checkCPUPeriod resets a period outside 8ms-100ms to 100ms, as the ECS
// agent does.
func checkCPUPeriod(c *Config) string {
	if p := c.Tasks.CgroupCPUPeriod; p < 8*time.Millisecond || p > 100*time.Millisecond {
		c.Tasks.CgroupCPUPeriod = 100 * time.Millisecond
		return fmt.Sprintf("%s is outside 8ms-100ms; using the default 100ms, as the ECS agent does", p)
	}
	return ""
}

// joinWarnings joins the non-empty warnings with "; ".
func joinWarnings(ws ...string) string {
	var out []string
	for _, w := range ws {
		if w != "" {
			out = append(out, w)
		}
	}
	return strings.Join(out, "; ")
}

// checkPidsLimit treats a limit outside 1-4194304 as unset, as the ECS agent
// does, and warns that a limit has no effect without task cgroups.
func checkPidsLimit(c *Config) string {
	const most = 4194304 // runc's limit on Amazon Linux, which the ECS agent copies
	switch n := c.Tasks.PidsLimit; {
	case n == 0:
		return ""
	case n < 0 || n > most:
		c.Tasks.PidsLimit = 0
		return fmt.Sprintf("%d is outside 1-%d; treated as unset (unlimited), as the ECS agent does", n, most)
	case !c.Tasks.CPUMemLimit:
		return "has no effect with ECS_ENABLE_TASK_CPU_MEM_LIMIT=false (pids.max is set on the task cgroup), as in the ECS agent"
	default:
		return ""
	}
}

// checkPollInterval keeps ECS_POLLING_METRICS_WAIT_DURATION within 5s-20s,
// moving a value outside to the nearest bound, as the ECS agent does.
func checkPollInterval(c *Config) string {
	const lo, hi = 5 * time.Second, 20 * time.Second
	if c.Metrics.PollInterval > hi {
		msg := fmt.Sprintf("%s is above the maximum of %s; using %s, as the ECS agent does", formatDuration(c.Metrics.PollInterval), formatDuration(hi), formatDuration(hi))
		c.Metrics.PollInterval = hi
		return msg
	}
	return clampDuration(&c.Metrics.PollInterval, lo)
}
