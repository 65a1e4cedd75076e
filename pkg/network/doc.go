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
// internal/layout): callers hand it neutral types (SetupRequest, Mode,
// PortRequest) and get back a Sandbox, which the caller keeps and hands
// back to Teardown; the package itself records each sandbox under its run
// directory for crash clean-up, and persists port allocations through the
// PortStore its caller provides.
//
// pkg/agent imports it (task networking for the engine, the credentials
// route, dev mode's network removal); so do the test runner's sweep
// (internal/testenv) and the benchmarks. No other package of the agent may:
// the engine reaches it through pkg/agent.
package network
