#!/bin/sh
# berth-agent post-install. deb: $1 = configure, $2 = the old version on an
# upgrade. rpm: $1 = 1 on install, 2 on upgrade.
set -e

unit=berth-agent.service

first_install=false
case "$1" in
	configure)
		if [ -z "$2" ]; then
			first_install=true
		fi
		;;
	1) first_install=true ;;
esac

if [ "$first_install" = true ] && command -v systemctl >/dev/null 2>&1; then
	# Enabled but not started: the agent needs a cluster and an endpoint in
	# /etc/ecs/ecs.config first (docs/install.md). `systemctl enable` only
	# writes symlinks, so it also works while building an image.
	systemctl enable "$unit" >/dev/null 2>&1 || true
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running agent; KillMode=process keeps the task
	# containers running and the new agent adopts them.
	if [ "$first_install" = false ]; then
		systemctl try-restart "$unit" >/dev/null 2>&1 || true
	fi
fi
exit 0
