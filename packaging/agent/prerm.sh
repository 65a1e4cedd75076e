#!/bin/sh
# berth-agent pre-removal. deb: $1 = remove, upgrade, deconfigure, ...
# rpm: $1 = 0 on removal, 1 on upgrade. Only a removal stops the agent; an
# upgrade restarts it from postinst. Task containers keep running either way
# (KillMode=process); stop tasks through the cluster first to drain the host.
set -e

unit=berth-agent.service

case "$1" in
	remove | 0)
		if [ -d /run/systemd/system ]; then
			systemctl stop "$unit" >/dev/null 2>&1 || true
		fi
		if command -v systemctl >/dev/null 2>&1; then
			systemctl disable "$unit" >/dev/null 2>&1 || true
		fi
		;;
esac
exit 0
