#!/usr/bin/env bash
# deps.sh installs the Debian packages that one of Berth's entry points
# needs, only those missing, never upgrading what is installed, and without
# recommended packages (vagrant alone would otherwise bring libvirt, QEMU and
# a desktop's worth of libraries):
#
#   scripts/deps.sh demo     make demo: containerd, runc, the CNI plugins, a
#                            registry, busybox-static (the demo image),
#                            iptables and iproute2 (task networks), and
#                            haproxy (berth-lb's data plane)
#   scripts/deps.sh test     make test and make bench: the demo's, plus what
#                            the other tests run (nftables' nft, tini,
#                            rsyslog, systemd's journald, shellcheck, rpm,
#                            packer, vagrant, openssl, wrk, etcd-server,
#                            git, make, chromium and firefox-esr for the
#                            console's browser tests, nodejs to drive
#                            Firefox with puppeteer-core)
#   scripts/deps.sh --list SET   print the set's packages, one per line
#
# Both sets also install Debian's npm when no npm is on the PATH (the
# console's browser libraries are fetched with it by every build).
#
# Go itself is not a Debian package here (bookworm's is too old); install it
# first. The package counts a fresh Debian 12 machine installs are in
# README.md.
set -euo pipefail

demo=(containerd runc containernetworking-plugins docker-registry busybox-static iptables iproute2 haproxy)
test=("${demo[@]}" nftables tini rsyslog systemd shellcheck rpm packer vagrant openssl wrk etcd-server git make chromium firefox-esr nodejs)

usage() {
	echo "usage: scripts/deps.sh [--list] demo|test" >&2
	exit 2
}

list=
if [ "${1:-}" = --list ]; then
	list=1
	shift
fi
[ $# -eq 1 ] || usage
case $1 in
demo) want=("${demo[@]}") ;;
test) want=("${test[@]}") ;;
*) usage ;;
esac
if [ -n "$list" ]; then
	printf '%s\n' "${want[@]}"
	exit 0
fi

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in "${want[@]}"; do
	have_pkg "$p" || need+=("$p")
done
# npm fetches the console's browser libraries for every build (make
# console-assets). Debian's npm package is installed only when no npm is on
# the PATH: a Node.js from elsewhere (NodeSource's nodejs bundles npm)
# conflicts with it and serves as well.
if ! command -v npm >/dev/null; then
	need+=(npm)
fi

if [ "${#need[@]}" -eq 0 ]; then
	echo "deps ($1): everything is installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps ($1): missing ${need[*]}; run as root or: apt-get install --no-install-recommends ${need[*]}" >&2
	exit 1
fi
echo "deps ($1): installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty or stale.
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends --no-upgrade "${need[@]}"
# Debian starts the packaged containerd, registry, etcd and haproxy (where
# systemd runs); the tests and the demo run their own private ones on free
# loopback ports, so the system services are left as the operator configured
# them.
