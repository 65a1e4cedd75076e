#!/usr/bin/env bash
# make demo: runs Berth end to end on this machine. It starts a private
# containerd and a loopback registry (berth-testenv), builds a small HTTP
# server image from busybox-static into that registry, starts dev mode
# (berth-agent --dev: a cluster endpoint and an agent in one process),
# registers a task definition with hostPort 0, runs two tasks, curls each,
# and streams one container's log. Ctrl-C stops the tasks and cleans up.
# Needs root (containers and their networks); `make demo` installs what is
# missing first (scripts/test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

BRIDGE=berthdemo0
SUBNET=10.231.77.0/24

if [ "${BERTH_DEMO_INNER:-}" != 1 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "demo: run as root (it starts containers and sets up their network): sudo make demo" >&2
		exit 1
	fi
	go=${GO:-go}
	echo "==> building the demo tools"
	"$go" build -o bin/berth-testenv ./internal/testenv/cmd/berth-testenv
	"$go" build -o bin/berth-demoimage ./internal/testenv/cmd/berth-demoimage
	"$go" build -o bin/berth-democtl ./internal/democtl
	[ -x bin/berth-agent ] || CGO_ENABLED=0 "$go" build -o bin/berth-agent ./cmd/agent
	echo "==> starting a private containerd and a loopback registry"
	BERTH_DEMO_INNER=1 exec bin/berth-testenv -- "$0"
fi

dev_dir=$(mktemp -d "${TMPDIR:-/tmp}/berth-demo.XXXXXX")
agent_pid=

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
		echo "==> stopping dev mode"
		kill -TERM "$agent_pid" 2>/dev/null || true
		wait "$agent_pid" 2>/dev/null || true
	fi
	ip link del "$BRIDGE" 2>/dev/null || true
	rm -rf "$dev_dir"
}
trap cleanup EXIT

echo "==> building the demo image into the loopback registry"
image='' containerd='' snapshotter=''
assignments=$(bin/berth-demoimage)
eval "$assignments"
echo "    $image"

port=$(bin/berth-democtl free-port)
echo "==> starting dev mode: berth-agent --dev --dev-dir $dev_dir"
# setsid keeps Ctrl-C away from the agent: the tasks are stopped through the
# API first, then the agent is stopped by cleanup.
BERTH_CONTAINERD_ADDRESS=$containerd \
	BERTH_CONTAINERD_NAMESPACE=berth-demo \
	BERTH_INTROSPECTION_ADDRESS=127.0.0.1:$port \
	BERTH_BRIDGE_NAME=$BRIDGE \
	BERTH_BRIDGE_SUBNET=$SUBNET \
	ECS_CONTAINER_STOP_TIMEOUT=5s \
	setsid bin/berth-agent --dev --dev-dir "$dev_dir" \
	--containerd-snapshotter "${snapshotter:-overlayfs}" \
	>"$dev_dir/agent.out" 2>"$dev_dir/agent.log" &
agent_pid=$!

for _ in $(seq 1 300); do
	[ -s "$dev_dir/env" ] && break
	if ! kill -0 "$agent_pid" 2>/dev/null; then
		echo "demo: dev mode exited; its log:" >&2
		cat "$dev_dir/agent.log" >&2
		exit 1
	fi
	sleep 0.2
done
if [ ! -s "$dev_dir/env" ]; then
	echo "demo: dev mode did not write $dev_dir/env within a minute; its log:" >&2
	cat "$dev_dir/agent.log" >&2
	exit 1
fi
cat "$dev_dir/agent.out"
# shellcheck source=/dev/null
. "$dev_dir/env"

# Ctrl-C reaches berth-democtl, which stops the tasks; this shell waits.
trap '' INT
status=0
bin/berth-democtl run "$image" "127.0.0.1:$port" || status=$?
trap - INT
if [ "$status" -ne 0 ]; then
	echo "demo: failed; the agent's log ends with:" >&2
	tail -n 30 "$dev_dir/agent.log" >&2
fi
exit "$status"
