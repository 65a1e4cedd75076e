// Package network owns task networking on one host: network namespaces the
// agent creates and bind-mounts, their wiring by one of two datapaths
// (built in: netlink, its own address leases and one nftables table per
// agent; or CNI through go-cni and the standard plugins bridge, host-local,
// portmap, firewall and loopback), the host-port allocator, clean-up of
// what a crashed agent left behind (only what carries this agent's owner
// tag; what cannot be removed is retried in the background and reported),
// and the iptables rules that route the task credentials address
// (169.254.170.2) to the agent (CredentialsRoute).
//
// It knows nothing of ECS, the engine or the agent's database (rules in
// internal/layout): of Berth it imports only the neutral types of
// pkg/container. *Sandboxer is the engine's Network as it is (task.go):
// SetupNetwork takes a container.NetworkRequest and returns a
// container.NetworkResult whose handle (the Sandbox as JSON) the engine
// persists and hands back to TeardownNetwork, and at start-up to
// CleanupHandles. Below that, Setup takes neutral types (SetupRequest,
// Mode, PortRequest) and returns a Sandbox for Teardown and Cleanup. The
// package records each sandbox under its run directory for crash clean-up,
// and persists port allocations through the PortStore its caller provides.
//
// pkg/agent imports it and hands the Sandboxer to the engine (task
// networking; the engine calls it directly, not through pkg/agent), and
// uses it for the credentials route and dev mode's network removal; so do
// the test runner's sweep (internal/testenv) and the benchmarks. The engine
// itself never imports it: it holds the Sandboxer as its Network interface.
package network
