#!/bin/sh
# berth-agent post-removal. deb: $1 = remove, purge, upgrade, ...
# rpm: $1 = 0 on removal, 1 on upgrade. Data stays unless the package is
# purged (deb only: rpm has no purge, so rpm removals always keep it).
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$1" = purge ]; then
	# berth.db, container logs, task volumes and the credentials audit log.
	rm -rf /var/lib/berth /var/log/ecs
	rmdir /etc/ecs 2>/dev/null || true
fi
exit 0
