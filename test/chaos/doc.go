// Package chaos is the fault-injection suite of issue 23 (`make chaos`,
// docs/reliability.md): the built berth-cluster and berth-agent on a
// containerd of their own, in a private mount and network namespace, while
// the agent is killed with SIGKILL as tasks start and stop, containerd is
// killed, the endpoint is down and containers are killed from the host;
// after each fault it checks that no container is orphaned or doubled,
// every acknowledged RunTask and StopTask is honoured, host ports are
// distinct and answer, every state change reaches the endpoint, and
// nothing (rule, namespace, veth, snapshot, lease) is left once every task
// is stopped. `make test` runs a short version. It has no code outside its
// tests and nothing imports it.
package chaos
