#!/bin/sh
# berth-lb pre-removal. deb: $1 = remove, upgrade, deconfigure, ...
# rpm: $1 = 0 on removal, 1 on upgrade. An upgrade restarts berth-lb from
# postinst and leaves HAProxy serving; a removal stops berth-lb and the
# HAProxy instances it started (their master pid files under /run/berth-lb).
set -e

unit=berth-lb.service

case "$1" in
	remove | 0)
		if [ -d /run/systemd/system ]; then
			systemctl stop "$unit" >/dev/null 2>&1 || true
		fi
		if command -v systemctl >/dev/null 2>&1; then
			systemctl disable "$unit" >/dev/null 2>&1 || true
		fi
		for pidfile in /run/berth-lb/*/haproxy.pid; do
			[ -f "$pidfile" ] || continue
			kill "$(cat "$pidfile")" 2>/dev/null || true
		done
		;;
esac
exit 0
