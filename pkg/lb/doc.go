// Package lb is berth-lb, the load balancer data plane: for each load
// balancer it serves, it reads the listeners, rules, target groups and
// targets from the cluster endpoint's data-plane API
// (pkg/cluster/elbv2/lbwire, with an lb key), runs one HAProxy for it and
// programs that HAProxy: the frontends and backends (listeners, rules,
// target groups, health checks) go into a configuration file berth-lb owns
// and are applied with a seamless reload only when that structure changes;
// targets come and go as servers through HAProxy's runtime API, without a
// reload. HAProxy's own health checks decide target health, which berth-lb
// reports back with ReportTargetHealth.
//
// HAProxy is a separate process (master-worker, daemonized) that outlives
// berth-lb: berth-lb never stops it, and adopts a running one at start.
//
// cmd/lb imports this package; of the endpoint it imports only the wire
// types (lbwire), a rule internal/layout enforces. docs/load-balancing.md
// describes it.
package lb
