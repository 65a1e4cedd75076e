#!/bin/sh
# berth-cluster pre-removal. deb: $1 = remove, upgrade, deconfigure, ...
# rpm: $1 = 0 on removal, 1 on upgrade. Only a removal stops the endpoint;
# an upgrade restarts it from postinst.
set -e

unit=berth-cluster.service

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
