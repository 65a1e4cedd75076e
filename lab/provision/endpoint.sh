#!/bin/sh
# Provisions the lab's endpoint VM from what lab/prepare.sh staged (copied
# to /berth-lab): installs the berth-cluster package, its TLS certificate and
# the data directory holding the lab's access keys, then starts it. Run as
# root by Vagrant.
set -eu

src=/berth-lab

export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "$src/dist/berth-cluster.deb"

install -d -m 0750 -o root -g berth-cluster /etc/berth/tls
install -m 0644 -o root -g root "$src/endpoint.crt" /etc/berth/tls/cluster.crt
install -m 0640 -o root -g berth-cluster "$src/endpoint.key" /etc/berth/tls/cluster.key

install -m 0640 -o root -g berth-cluster "$src/cluster.toml" /etc/berth/cluster.toml

# The keyring from prepare.sh replaces whatever a previous run left.
systemctl stop berth-cluster.service || true
rm -rf /var/lib/berth-cluster/*
cp -R "$src/cluster/." /var/lib/berth-cluster/
chown -R berth-cluster:berth-cluster /var/lib/berth-cluster

systemctl enable --now berth-cluster.service
systemctl --no-pager status berth-cluster.service
