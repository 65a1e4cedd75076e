// Package network owns task networking on one host: network namespaces the
// agent creates and bind-mounts, their wiring by one of two datapaths
// (built in: netlink, its own address leases and one nftables table per
// agent; or CNI through go-cni and the standard plugins bridge,
// host-local, portmap, firewall and loopback), the host-port allocator, clean-up of what a crashed agent left behind (only
// what carries this agent's owner tag; what cannot be removed is retried in
// the background and reported), and the iptables rules that route the task
// credentials address (169.254.170.2) to the agent.
//
// It knows nothing of ECS: the engine (pkg/engine) calls it with neutral
// types (Mode, PortRequest, Sandbox, Binding) and persists the Sandbox
// records and port allocations it hands back. pkg/iam uses the credentials
// routing helpers. Nothing else in the agent should import it.
package network
