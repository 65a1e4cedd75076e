#!/usr/bin/env bash
# Installs the packages that Berth's integration tests need, only where missing.
# It never upgrades what is already installed.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in containerd runc containernetworking-plugins docker-registry busybox-static iptables iproute2 skopeo tini shellcheck rpm packer vagrant openssl rsyslog systemd wrk etcd-server; do
	have_pkg "$p" || need+=("$p")
done

if [ "${#need[@]}" -eq 0 ]; then
	echo "test-deps: everything is installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: missing ${need[*]}; run as root or: apt-get install ${need[*]}" >&2
	exit 1
fi
echo "test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-upgrade "${need[@]}"
# Debian starts the packaged containerd, registry and etcd (where systemd runs); tests
# run their own private ones on free loopback ports, so the system services are left as
# the operator configured them.
