#!/bin/sh
# berth-lb post-removal. deb: $1 = remove, purge, upgrade, ...
# rpm: $1 = 0 on removal, 1 on upgrade.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$1" = purge ]; then
	rm -rf /run/berth-lb
	rmdir /etc/berth 2>/dev/null || true
fi
exit 0
