#!/bin/sh
# berth-cluster post-removal. deb: $1 = remove, purge, upgrade, ...
# rpm: $1 = 0 on removal, 1 on upgrade. Data (cluster.db, master.key) stays
# unless the package is purged (deb only). The berth-cluster user is kept,
# as Debian policy advises, so that files it owns never change owner.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$1" = purge ]; then
	rm -rf /var/lib/berth-cluster
	rmdir /etc/berth 2>/dev/null || true
fi
exit 0
