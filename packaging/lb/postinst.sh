#!/bin/sh
# berth-lb post-install. deb: $1 = configure, $2 = the old version on an
# upgrade. rpm: $1 = 1 on install, 2 on upgrade.
set -e

unit=berth-lb.service

first_install=false
case "$1" in
	configure)
		if [ -z "$2" ]; then
			first_install=true
		fi
		;;
	1) first_install=true ;;
esac

# lb.toml holds an lb key: root alone reads it.
chmod 0600 /etc/berth/lb.toml

if [ "$first_install" = true ] && command -v systemctl >/dev/null 2>&1; then
	# Enabled but not started: lb.toml needs the endpoint, a key and the
	# load balancers first (docs/install.md).
	systemctl enable "$unit" >/dev/null 2>&1 || true
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$first_install" = false ]; then
		# HAProxy keeps serving while berth-lb restarts (KillMode=process).
		systemctl try-restart "$unit" >/dev/null 2>&1 || true
	fi
fi
exit 0
