#!/bin/sh
# berth-cluster post-install. deb: $1 = configure, $2 = the old version on an
# upgrade. rpm: $1 = 1 on install, 2 on upgrade.
set -e

unit=berth-cluster.service
user=berth-cluster

first_install=false
case "$1" in
	configure)
		if [ -z "$2" ]; then
			first_install=true
		fi
		;;
	1) first_install=true ;;
esac

# The service's own user: systemd-sysusers reads the file the package ships;
# useradd covers hosts without it.
if ! getent passwd "$user" >/dev/null; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/berth-cluster.conf
	else
		useradd --system --user-group --home-dir /var/lib/berth-cluster \
			--no-create-home --shell /usr/sbin/nologin "$user"
	fi
fi

install -d -m 0750 -o "$user" -g "$user" /var/lib/berth-cluster
# The configuration may name key files; only root and the service read it.
chgrp "$user" /etc/berth/cluster.toml
chmod 0640 /etc/berth/cluster.toml

if [ "$first_install" = true ] && command -v systemctl >/dev/null 2>&1; then
	# Enabled but not started: cluster.toml needs an account ID and TLS
	# settings first (docs/install.md).
	systemctl enable "$unit" >/dev/null 2>&1 || true
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$first_install" = false ]; then
		systemctl try-restart "$unit" >/dev/null 2>&1 || true
	fi
fi
exit 0
