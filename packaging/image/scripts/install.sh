#!/bin/sh
# Installs berth-agent and its dependencies (containerd, runc, CNI plugins,
# iptables) from Debian into the image. Run as root by Packer.
set -eu

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends /tmp/berth-agent.deb
rm -f /tmp/berth-agent.deb

install -d -m 0755 /etc/systemd/system/berth-agent.service.d
install -m 0644 /tmp/berth-agent-cloud-init.conf \
	/etc/systemd/system/berth-agent.service.d/10-cloud-init.conf
rm -f /tmp/berth-agent-cloud-init.conf

# The package's commented example would let the agent start with default
# settings on an instance launched without user data; the image instead
# waits for user data to write the file (ConditionPathExists above).
rm -f /etc/ecs/ecs.config

systemctl enable containerd.service berth-agent.service
berth-agent --version
