package devmode

import (
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/berth-dev/berth/pkg/agent"
	"github.com/berth-dev/berth/pkg/config"
)

// What dev mode's agent uses where the configuration leaves a setting at
// its default, so that it shares nothing with a system agent (Berth's, run
// with the defaults) on the same host: its own bridge, subnet, containerd
// namespace, netns names, CNI state and host port range, and loopback
// ports kept in DIR/addresses instead of 127.0.0.1:51678 and :51679.
const (
	DevBridge    = "berthdev0"
	DevSubnet    = "10.204.0.0/24"
	DevNamespace = "berth-dev"
	// DevNamePrefix starts the names of dev mode's sandboxes and network
	// namespaces (a system agent's start with "berth-").
	DevNamePrefix = "berthdev-"
	// DevPortFirst and DevPortLast bound the host ports given to
	// hostPort 0 (a system agent's default is 49153-65535).
	DevPortFirst, DevPortLast = 40000, 40999
)

// devAgentOptions put the agent's CNI configuration, IPAM leases and
// sandbox records under DIR/run instead of the system agent's /run/berth,
// name its sandboxes with DevNamePrefix, and have a clean stop with no
// sandbox left remove the network's host-wide parts (nftables table,
// forward rules): its owner tag derives from DIR, which the user may
// delete, and nothing would remove them afterwards. Options.AgentOptions
// come after them and win.
func devAgentOptions(dir string) []agent.Option {
	return []agent.Option{agent.WithNetworkRunDir(filepath.Join(dir, "run")), agent.WithNamePrefix(DevNamePrefix),
		agent.WithNetworkUninstallOnStop()}
}

// isDefault reports whether the configuration left key at its default.
func isDefault(cfg *config.Config, key string) bool {
	return cfg.Source(key).Kind == config.SourceDefault
}

// addressesToKeep names the listeners whose addresses dev mode chooses and
// keeps in DIR/addresses: the endpoint unless listen is given, the
// introspection API and (with task roles) the credentials endpoint unless
// the configuration sets their addresses.
func addressesToKeep(cfg *config.Config, listen string) []string {
	var names []string
	if listen == "" {
		names = append(names, addrEndpoint)
	}
	if isDefault(cfg, "BERTH_INTROSPECTION_ADDRESS") {
		names = append(names, addrIntrospection)
	}
	if willServeCredentials(cfg) && isDefault(cfg, "BERTH_CREDENTIALS_ADDRESS") {
		names = append(names, addrCredentials)
	}
	return names
}

// willServeCredentials reports whether the agent will serve task role
// credentials: dev mode turns them on unless the configuration says.
func willServeCredentials(cfg *config.Config) bool {
	return cfg.IAM.EnableTaskRole || isDefault(cfg, "ECS_ENABLE_TASK_IAM_ROLE")
}

// applyDevSettings sets what dev mode changes in the agent's configuration
// where the configuration leaves it at the default: the data directory,
// awslogs, task roles, the kept addresses and the isolation settings above.
func applyDevSettings(cfg *config.Config, dir string, addrs keptAddresses) {
	if cfg.DataDir == "" || isDefault(cfg, "ECS_DATADIR") {
		cfg.DataDir = filepath.Join(dir, "agent")
	}
	if cfg.Containers.AWSLogsEndpoint == "" {
		// awslogs containers ship to the dev endpoint's log store, so the
		// driver is allowed unless the configuration lists drivers itself.
		cfg.Containers.AWSLogsEndpoint = "cluster"
		if isDefault(cfg, "ECS_AVAILABLE_LOGGING_DRIVERS") &&
			!slices.Contains(cfg.Containers.AvailableLoggingDrivers, "awslogs") {
			cfg.Containers.AvailableLoggingDrivers = append(slices.Clone(cfg.Containers.AvailableLoggingDrivers), "awslogs")
		}
	}
	// Task roles are part of what dev mode lets a lab try (--dev-role), so
	// they are on unless the operator set the key.
	if isDefault(cfg, "ECS_ENABLE_TASK_IAM_ROLE") {
		cfg.IAM.EnableTaskRole = true
	}
	if isDefault(cfg, "ECS_AUDIT_LOGFILE") {
		cfg.IAM.AuditLogFile = filepath.Join(dir, "audit.log") // every file under DIR
	}
	if ap, ok := addrs[addrIntrospection]; ok {
		cfg.Listen.Introspection = ap
	}
	if ap, ok := addrs[addrCredentials]; ok {
		// The 169.254.170.2 route follows whatever port this is.
		cfg.Listen.Credentials = ap
	}
	if isDefault(cfg, "BERTH_BRIDGE_NAME") {
		cfg.Network.BridgeName = DevBridge
	}
	if isDefault(cfg, "BERTH_BRIDGE_SUBNET") {
		cfg.Network.BridgeSubnet = netip.MustParsePrefix(DevSubnet)
	}
	if isDefault(cfg, "BERTH_CONTAINERD_NAMESPACE") {
		cfg.Containerd.Namespace = DevNamespace
	}
	if isDefault(cfg, "ECS_DYNAMIC_HOST_PORT_RANGE") {
		cfg.Ports.DynamicRange = config.PortRange{First: DevPortFirst, Last: DevPortLast}
	}
}
