#!/usr/bin/env bash
# make demo: runs Berth end to end on this machine. It starts a private
# containerd and a loopback registry (berth-testenv), builds a small HTTP
# server image from busybox-static into that registry, starts dev mode
# (berth-agent --dev: a cluster endpoint and an agent in one process),
# creates a load balancer with an HTTP listener on a fixed loopback port
# (BERTH_DEMO_LB_PORT, 8480) and starts berth-lb for it (the real daemon,
# which runs HAProxy), registers a task definition with hostPort 0, runs
# two tasks as a service behind the load balancer, curls each, prints the
# load balancer's URL, replaces both tasks while requesting that URL, and
# streams one container's log. Ctrl-C stops the tasks, then berth-lb and its
# HAProxy, then dev mode (which removes its network's rules), then the
# bridge, containerd and the registry.
# Needs root (containers and their networks); `make demo` installs what is
# missing first (scripts/deps.sh demo).
#
# Ctrl-C in a terminal sends SIGINT to the whole foreground process group at
# once: make, berth-testenv, this script, berth-democtl and whatever short
# command runs. Only this script's clean-up stops things, in this order:
#   1. the tasks, through the API (berth-democtl stop: the service is
#      deleted, its tasks drain from the load balancer and stop), so that
#      the agent tears down their containers and task networks;
#   1'. berth-lb (SIGTERM; setsid, like the agent), then the HAProxy it
#      started, which outlives berth-lb by design (its pid file);
#   2. the agent (SIGTERM): it removes its credentials rules; it runs in a
#      session of its own (setsid), so the terminal's SIGINT never reaches it;
#   2'. with no task left, dev mode removes its network's rules itself on
#      that stop (the built-in datapath's nftables table, the bridge's
#      forward rules; docs/dev-mode.md);
#   3. the bridge, which outlives the agent by design;
#   4. containerd and the registry: berth-testenv forwards the signal to this
#      script and tears them down only once this script has exited; make
#      waits for berth-testenv.
# The clean-up ignores INT, TERM and HUP, so neither a second Ctrl-C nor the
# copy of the signal that berth-testenv forwards can cut it short.
#
# Environment (defaults in brackets), for running beside another demo or in
# a test: BERTH_DEMO_BIN, where the tools are built [bin]; BERTH_DEMO_BRIDGE
# [berthdemo0]; BERTH_DEMO_SUBNET [10.231.77.0/24]; BERTH_DEMO_LB_PORT, the
# load balancer's listener on 127.0.0.1 [8480]; BERTH_DEMO_FOLLOW_FOR, how
# long the log is followed when standard input is no terminal [30s].
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BERTH_DEMO_BIN:-bin}
BRIDGE=${BERTH_DEMO_BRIDGE:-berthdemo0}
SUBNET=${BERTH_DEMO_SUBNET:-10.231.77.0/24}
LB_PORT=${BERTH_DEMO_LB_PORT:-8480}

if [ "${BERTH_DEMO_INNER:-}" != 1 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "demo: run as root (it starts containers and sets up their network): sudo make demo" >&2
		exit 1
	fi
	go=${GO:-go}
	echo "==> building berth-agent and the demo tools into $BIN"
	version=$(scripts/version.sh)
	CGO_ENABLED=0 "$go" build -trimpath -ldflags "-X github.com/berth-dev/berth/internal/version.Version=$version" \
		-o "$BIN/berth-agent" ./cmd/agent
	CGO_ENABLED=0 "$go" build -trimpath -ldflags "-X github.com/berth-dev/berth/internal/version.Version=$version" \
		-o "$BIN/berth-lb" ./cmd/lb
	"$go" build -o "$BIN/berth-testenv" ./internal/testenv/cmd/berth-testenv
	"$go" build -o "$BIN/berth-demoimage" ./internal/testenv/cmd/berth-demoimage
	"$go" build -o "$BIN/berth-democtl" ./internal/democtl
	echo "==> starting a private containerd and a loopback registry"
	# --no-sweep: the runner's removal of interrupted test runs' leftovers
	# is for test runs; tests may be running right now.
	BERTH_DEMO_INNER=1 exec "$BIN/berth-testenv" --no-sweep -- "$0"
fi

dev_dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-demo.XXXXXX")
agent_pid=
ctl_pid=
lb_pid=

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local status=$?
	# A child that the shell forked and that has not yet run its program
	# still holds these traps; the clean-up is the main shell's alone.
	[ "$BASHPID" = "$$" ] || exit "$status"
	trap '' INT TERM HUP
	# Every step is tried: a failed one (even an echo to a terminal that
	# hung up) must not end the clean-up.
	set +e
	if [ -n "$ctl_pid" ]; then
		kill -TERM "$ctl_pid" 2>/dev/null || true
		wait "$ctl_pid" 2>/dev/null || true
	fi
	if [ -n "$agent_pid" ] && ! kill -0 "$agent_pid" 2>/dev/null; then
		local agent_status=0
		wait "$agent_pid" 2>/dev/null || agent_status=$?
		echo "demo: dev mode had exited by itself (status $agent_status); its log ends with:" >&2
		tail -n 20 "$dev_dir/agent.log" >&2
	elif [ -n "$agent_pid" ]; then
		if [ -s "$dev_dir/env" ]; then
			# shellcheck source=/dev/null
			(. "$dev_dir/env" && "$BIN/berth-democtl" stop) ||
				echo "demo: stopping the tasks failed; stopping dev mode anyway" >&2
		fi
		stop_lb
		echo "==> stopping dev mode"
		kill -TERM "$agent_pid" 2>/dev/null || true
		# A clean stop takes a second or two; after a minute it gets SIGKILL.
		if ! wait_exit "$agent_pid" 600; then
			echo "demo: dev mode did not stop within a minute of SIGTERM; killing it (its credentials rules stay); its log ends with:" >&2
			tail -n 20 "$dev_dir/agent.log" >&2
			kill -KILL "$agent_pid" 2>/dev/null || true
		fi
		wait "$agent_pid" 2>/dev/null || true
	fi
	stop_lb
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		echo "==> removing the bridge $BRIDGE"
		ip link del "$BRIDGE" || true
	fi
	rm -rf "$dev_dir"
	exit "$status"
}
# wait_exit PID N waits up to N tenths of a second for PID to exit; it fails
# if PID still runs. (bash reaps its children as soon as they exit, so kill
# -0 then fails.)
# shellcheck disable=SC2317 # invoked by cleanup
wait_exit() {
	for _ in $(seq 1 "$2"); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	! kill -0 "$1" 2>/dev/null
}
# stop_lb stops berth-lb, then the HAProxy it started (berth-lb leaves
# HAProxy serving when it stops, by design: docs/load-balancing.md).
# shellcheck disable=SC2317 # invoked by cleanup
stop_lb() {
	if [ -n "$lb_pid" ]; then
		echo "==> stopping berth-lb and its HAProxy"
		kill -TERM "$lb_pid" 2>/dev/null || true
		wait_exit "$lb_pid" 100 || kill -KILL "$lb_pid" 2>/dev/null || true
		wait "$lb_pid" 2>/dev/null || true
		lb_pid=
	fi
	local pidfile=$dev_dir/lb/berth-demo/haproxy.pid haproxy_pid
	if [ -s "$pidfile" ]; then
		haproxy_pid=$(cat "$pidfile")
		kill -TERM "$haproxy_pid" 2>/dev/null || true
		wait_exit "$haproxy_pid" 50 || kill -KILL "$haproxy_pid" 2>/dev/null || true
		rm -f "$pidfile"
	fi
}
trap cleanup EXIT
# A signal ends the script (status 128+N) and the EXIT trap cleans up. The
# signals are ignored first: the copy berth-testenv forwards arrives a moment
# after the terminal's, and a trap run again inside the clean-up would end
# it half-way (as it did before, leaving the agent running).
trap '[ "$BASHPID" = "$$" ] || exit 130; trap "" INT TERM HUP; exit 130' INT
trap '[ "$BASHPID" = "$$" ] || exit 143; trap "" INT TERM HUP; exit 143' TERM
trap '[ "$BASHPID" = "$$" ] || exit 129; trap "" INT TERM HUP; exit 129' HUP

echo "==> building the demo image into the loopback registry"
image='' containerd='' snapshotter=''
assignments=$("$BIN/berth-demoimage")
eval "$assignments"
echo "    $image"

port=$("$BIN/berth-democtl" free-port)
echo "==> starting dev mode: berth-agent --dev --dev-dir $dev_dir"
BERTH_CONTAINERD_ADDRESS=$containerd \
	BERTH_CONTAINERD_NAMESPACE=berth-demo \
	BERTH_INTROSPECTION_ADDRESS=127.0.0.1:$port \
	BERTH_BRIDGE_NAME=$BRIDGE \
	BERTH_BRIDGE_SUBNET=$SUBNET \
	ECS_CONTAINER_STOP_TIMEOUT=5s \
	setsid "$BIN/berth-agent" --dev --dev-dir "$dev_dir" \
	--containerd-snapshotter "${snapshotter:-overlayfs}" \
	>"$dev_dir/agent.out" 2>"$dev_dir/agent.log" </dev/null &
agent_pid=$!

announced=
for _ in $(seq 1 300); do
	# Once berth-agent logs, it runs (not the shell's child before exec).
	if [ -z "$announced" ] && [ -s "$dev_dir/agent.log" ]; then
		echo "    dev mode runs as pid $agent_pid; waiting for $dev_dir/env"
		announced=1
	fi
	[ -s "$dev_dir/env" ] && break
	if ! kill -0 "$agent_pid" 2>/dev/null; then
		exit 1 # the clean-up shows the end of its log
	fi
	sleep 0.2
done
if [ ! -s "$dev_dir/env" ]; then
	echo "demo: dev mode did not become ready (no $dev_dir/env) within a minute; its log:" >&2
	cat "$dev_dir/agent.log" >&2
	exit 1
fi
# DIR/env exists only once dev mode's agent is registered and connected
# (docs/dev-mode.md, "Readiness"): tasks can be run at once.
cat "$dev_dir/agent.out"
# shellcheck source=/dev/null
. "$dev_dir/env"

# In the background, so that `wait` returns as soon as a signal reaches this
# script, also one sent to this script alone (bash runs a trap only once a
# foreground command has ended). The terminal's Ctrl-C reaches berth-democtl
# directly too: it stops following the log and exits 130.
# Nobody can press Ctrl-C without a terminal (a script, CI): then the log
# is followed for a while (BERTH_DEMO_FOLLOW_FOR, 30s) and the demo ends.
follow=()
if [ ! -t 0 ]; then
	follow=(--follow-for "${BERTH_DEMO_FOLLOW_FOR:-30s}")
	echo "    (no terminal on standard input: the log is followed for ${BERTH_DEMO_FOLLOW_FOR:-30s}, then the demo stops)"
fi
mkdir -p "$dev_dir/lb"
"$BIN/berth-democtl" lb "$LB_PORT" "$dev_dir/lb" "$dev_dir/lb.toml"
echo "==> starting berth-lb: $BIN/berth-lb --config $dev_dir/lb.toml (log: $dev_dir/lb.log)"
setsid "$BIN/berth-lb" --config "$dev_dir/lb.toml" >"$dev_dir/lb.log" 2>&1 </dev/null &
lb_pid=$!
url=http://127.0.0.1:$LB_PORT/

"$BIN/berth-democtl" run "${follow[@]}" "$image" "127.0.0.1:$port" "$url" &
ctl_pid=$!
status=0
wait "$ctl_pid" || status=$?
ctl_pid=
if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then
	echo "demo: failed; the agent's log ends with:" >&2
	tail -n 30 "$dev_dir/agent.log" >&2
	echo "demo: berth-lb's log ends with:" >&2
	tail -n 20 "$dev_dir/lb.log" >&2
fi
exit "$status"
