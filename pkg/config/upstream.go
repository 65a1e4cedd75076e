package config

import (
	"strconv"
	"strings"
)

// Reasons shared by several keys.
const (
	reasonUpdate  = "Berth is upgraded by its package manager, not by the agent updating itself on an ACS UpdateRequest"
	reasonENI     = "task ENIs are EC2 network interfaces that ECS attaches; Berth's awsvpc tasks get their own network namespace on the host bridge (docs/network.md)"
	reasonWindows = "it applies to Windows container instances only"
	reasonGPU     = "GPU tasks are not supported: Berth has no NVIDIA runtime integration"
	reasonGMSA    = "gMSA needs Active Directory and the credentials-fetcher daemon, which Berth does not integrate"
	reasonAgentCt = "it configures the ECS agent's own Docker container; Berth runs as a systemd service on the host"
	reasonLogOpts = "it configures the Docker log driver of the ECS agent's container; Berth logs to the journal or to ECS_LOGFILE (rotated by ECS_LOG_MAX_FILE_SIZE_MB and ECS_LOG_MAX_ROLL_COUNT)"
)

// unsupportedKeys are the upstream keys without a Config field: those Berth
// refuses, and the few whose effect is fixed in Berth. Each is accepted, so
// an ecs.config written for the ECS agent loads, and a value that asks for
// what Berth lacks earns a warning naming the key and the reason.
func unsupportedKeys() []Key {
	return []Key{
		// Agent updates and metrics.
		unsupportedBool("ECS_UPDATES_ENABLED", reasonUpdate),
		unsupportedString("ECS_UPDATE_DOWNLOAD_DIR", "path", tomlString, reasonUpdate),
		ignoredKey("ECS_POLL_METRICS", "bool", tomlBool, StatusDifferent, isTrue,
			"Berth always polls containerd's cgroup metrics every ECS_POLLING_METRICS_WAIT_DURATION; there is no Docker stats stream, so false earns a warning",
			notEnforcedMessage("container metrics are always polled every ECS_POLLING_METRICS_WAIT_DURATION; there is no stats stream")),
		ignoredKey("ECS_DISABLE_DOCKER_HEALTH_CHECK", "bool", tomlBool, StatusNotEnforced, isFalse,
			"the container-health-check capability is always registered and health checks always run",
			notEnforcedMessage("the container-health-check capability is always registered and health checks always run")),
		ignoredKey("ECS_ENABLE_PROMETHEUS_METRICS", "bool", tomlBool, StatusDifferent, isFalse,
			"Berth always serves Prometheus metrics, at /metrics on BERTH_INTROSPECTION_ADDRESS rather than on port 51680",
			"Berth always serves Prometheus metrics, at /metrics on BERTH_INTROSPECTION_ADDRESS rather than on port 51680"),
		ignoredKey("ECS_ENABLE_RUNTIME_STATS", "bool", tomlBool, StatusNotEnforced, isFalse,
			"the introspection API does not serve /debug/pprof and no runtime stats log is written",
			notEnforcedMessage("the introspection API does not serve /debug/pprof and no runtime stats log is written")),

		// Networking that needs EC2.
		unsupportedBool("ECS_ENABLE_TASK_ENI", reasonENI),
		unsupportedBool("ECS_ENABLE_HIGH_DENSITY_ENI", "ENI trunking needs EC2 trunk network interfaces"),
		unsupportedString("ECS_CNI_PLUGINS_PATH", "path", tomlString,
			"the ECS CNI plugins set up ENIs; Berth uses the standard CNI plugins found on BERTH_CNI_PATH"),
		unsupportedBool("ECS_ENABLE_SPOT_INSTANCE_DRAINING", "spot interruption notices come from EC2 instance metadata, which Berth does not poll"),
		unsupportedString("ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM", "enum: none, ec2_instance", tomlString,
			"ec2_instance needs the EC2 DescribeTags API for the instance", "none"),
		unsupportedBool("ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
			"Berth's filter against tasks reaching the host's loopback services belongs to its credentials route and cannot be skipped"),
		unsupportedString("ECS_OFFHOST_INTROSPECTION_INTERFACE_NAME", "string", tomlString,
			"Berth limits the introspection API by its listen address (BERTH_INTROSPECTION_ADDRESS), not by an iptables rule on an interface", "eth0"),

		// Accelerators, Windows, Active Directory, AWS storage.
		unsupportedBool("ECS_ENABLE_GPU_SUPPORT", reasonGPU),
		unsupportedString("ECS_NVIDIA_RUNTIME", "string", tomlString, reasonGPU, "nvidia"),
		unsupportedBool("ECS_ENABLE_INF_SUPPORT", "AWS Inferentia devices exist only on EC2 Inf instances"),
		unsupportedBool("ECS_ENABLE_CPU_UNBOUNDED_WINDOWS_WORKAROUND", reasonWindows),
		unsupportedBool("ECS_ENABLE_MEMORY_UNBOUNDED_WINDOWS_WORKAROUND", reasonWindows),
		unsupportedBool("ECS_FSX_WINDOWS_FILE_SERVER_SUPPORTED", "FSx for Windows File Server volumes need Windows and AWS FSx"),
		unsupportedBool("ECS_GMSA_SUPPORTED", reasonGMSA),
		unsupportedBool("ECS_DOMAIN_JOINED_LINUX_INSTANCE", reasonGMSA),
		unsupportedString("CREDENTIALS_FETCHER_HOST", "string", tomlString, reasonGMSA),
		unsupportedString("CREDENTIALS_FETCHER_SECRET_NAME_FOR_DOMAINLESS_GMSA", "string", tomlString, reasonGMSA),
		unsupportedBool("ECS_EBSTA_SUPPORTED", "EBS task attach needs EC2 EBS volumes and the EBS CSI driver"),
		unsupportedKey("ECS_VOLUME_PLUGIN_CAPABILITIES", "JSON array of strings", tomlStringArray, isEmptyJSON,
			"the ECS volume plugin mounts EFS volumes, which Berth does not support"),
		unsupportedBool("ECS_SHARED_VOLUME_MATCH_FULL_CONFIG",
			"it compares Docker volumes (dockerVolumeConfiguration with scope shared); Berth has no Docker volume drivers"),
		unsupportedString("ECS_ENABLE_FIRELENS_ASYNC", "bool", tomlBool, "FireLens (awsfirelens) is not supported"),

		// The ECS agent's container and the host around it.
		unsupportedString("ECS_HOST_DATA_DIR", "path", tomlString,
			"the ECS agent runs in a container whose ECS_DATADIR is mounted from this host directory; Berth runs on the host, so ECS_DATADIR is already a host path"),
		unsupportedString("ECS_CGROUP_PATH", "path", tomlString, "containerd and runc use the host's cgroup mount", "/sys/fs/cgroup"),
		unsupportedString("ECS_AGENT_HEALTHCHECK_HOST", "string", tomlString,
			"it is the ECS agent container's Docker health check; systemd's watchdog checks Berth", "localhost"),
		unsupportedKey("ECS_AGENT_LABELS", "JSON object", tomlStringTable, isEmptyJSON, reasonAgentCt),
		unsupportedString("ECS_AGENT_APPARMOR_PROFILE", "string", tomlString,
			reasonAgentCt+" (confine it with the unit's AppArmorProfile=)"),
		unsupportedString("ECS_AGENT_PID_NAMESPACE_HOST", "bool", tomlBool, reasonAgentCt+", in the host's PID namespace", "true", "1", "t"),
		unsupportedString("ECS_AGENT_RUN_PRIVILEGED", "bool", tomlBool, reasonAgentCt+", as root", "true", "1", "t"),
		unsupportedString("ECS_AGENT_CONFIG_FILE_PATH", "path", tomlString,
			"Berth reads ecs.config and /etc/berth/agent.toml, not the ECS agent's JSON configuration file"),
		unsupportedString("ECS_LOG_DRIVER", "string", tomlString, reasonLogOpts, "json-file"),
		unsupportedKey("ECS_LOG_OPTS", "JSON object", tomlStringTable, isEmptyJSON, reasonLogOpts),
		unsupportedString("ECS_INIT_DOCKER_LOG_FILE_SIZE", "string", tomlString, reasonLogOpts),
		unsupportedString("ECS_INIT_DOCKER_LOG_FILE_NUM", "string", tomlString, reasonLogOpts),
		unsupportedKey("ECS_PAUSE_LABELS", "JSON object", tomlStringTable, isEmptyJSON,
			"Berth's awsvpc tasks have no pause container: the agent creates their network namespace itself"),
		unsupportedString("DOCKER_HOST", "string", tomlString,
			"Berth runs containers on containerd, whose socket is BERTH_CONTAINERD_ADDRESS"),

		// Proxies: Go's HTTP client reads them from the process environment.
		proxyKey("HTTP_PROXY"),
		proxyKey("HTTPS_PROXY"),
		proxyKey("NO_PROXY"),
	}
}

// proxyKey is a proxy variable. Go's HTTP client reads it from the process
// environment; Config.ProxyEnv hands the values set in a file to cmd/agent,
// which puts them into the environment before the agent makes a request, as
// ecs-init passes ecs.config to the ECS agent's environment.
func proxyKey(name string) Key {
	k := ignoredKey(name, "string", tomlString, StatusDifferent, nil, "", "")
	k.Doc = "Proxy for the agent's own HTTP requests (the ECS API, registries, CloudWatch Logs)."
	k.Note = "Set in ecs.config or agent.toml it is put into berth-agent's environment at start (where Go's HTTP client reads it); `check` and `print-config` do not."
	k.check = nil
	return k
}

// ProxyEnv returns HTTP_PROXY, HTTPS_PROXY and NO_PROXY as NAME=value when
// a file set them; the process environment already holds the others.
func (c *Config) ProxyEnv() []string {
	var out []string
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v := c.unsupported[name]; v != "" && c.Source(name).Kind != SourceEnv {
			out = append(out, name+"="+v)
		}
	}
	return out
}

// notSettings are names an operator may find in ECS documentation that the
// agent sets inside task containers; it never reads them as configuration.
func notSettings() map[string]bool {
	return map[string]bool{
		"ECS_CONTAINER_METADATA_FILE":   true,
		"ECS_CONTAINER_METADATA_URI":    true,
		"ECS_CONTAINER_METADATA_URI_V4": true,
		"ECS_AGENT_URI":                 true,
	}
}

// isTrue reports whether s is a boolean true.
func isTrue(s string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return err == nil && b
}
