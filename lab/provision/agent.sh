#!/bin/sh
# Provisions a lab agent VM from what lab/prepare.sh staged (copied to
# /berth-lab): installs the berth-agent package (and, through its
# dependencies, containerd, runc, the CNI plugins and iptables), trusts the
# lab CA, writes /etc/ecs/ecs.config from agent.env and starts the agent.
# Run as root by Vagrant.
set -eu

src=/berth-lab

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "$src/dist/berth-agent.deb"

install -m 0644 "$src/ca.crt" /usr/local/share/ca-certificates/berth-lab-ca.crt
update-ca-certificates

{
	echo "# Written by lab/provision/agent.sh from lab/.state/agent.env."
	cat "$src/agent.env"
	echo "ECS_LOGLEVEL=debug"
} >/etc/ecs/ecs.config
chmod 0600 /etc/ecs/ecs.config

berth-agent check
systemctl enable containerd.service berth-agent.service
systemctl restart berth-agent.service
echo "berth-agent started: $(grep '^ECS_BACKEND_HOST=' /etc/ecs/ecs.config)"
