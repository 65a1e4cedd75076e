#!/bin/sh
# Provisions the lab's endpoint VM from what lab/prepare.sh staged (copied
# to /berth-lab): installs the berth-cluster package, its TLS certificate and
# the data directory holding the lab's access keys, then starts it. Run as
# root by Vagrant with the endpoint's IP address as the only argument.
set -eu

endpoint_ip=$1
src=/berth-lab

export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "$src/dist/berth-cluster.deb"

install -d -m 0750 -o root -g berth-cluster /etc/berth/tls
install -m 0644 -o root -g root "$src/endpoint.crt" /etc/berth/tls/cluster.crt
install -m 0640 -o root -g berth-cluster "$src/endpoint.key" /etc/berth/tls/cluster.key

cat >/etc/berth/cluster.toml <<EOT
# Written by lab/provision/endpoint.sh.
listen = ":8443"
tls_cert = "/etc/berth/tls/cluster.crt"
tls_key = "/etc/berth/tls/cluster.key"
region = "$(sed -n 's/^export AWS_REGION=//p' "$src/admin.env")"
account_id = "000000000000"
data_dir = "/var/lib/berth-cluster"
poll_endpoint = "https://$endpoint_ip:8443"
EOT
chgrp berth-cluster /etc/berth/cluster.toml
chmod 0640 /etc/berth/cluster.toml

# The keyring from prepare.sh replaces whatever a previous run left.
systemctl stop berth-cluster.service || true
rm -rf /var/lib/berth-cluster/*
cp -R "$src/cluster/." /var/lib/berth-cluster/
chown -R berth-cluster:berth-cluster /var/lib/berth-cluster

systemctl enable --now berth-cluster.service
systemctl --no-pager status berth-cluster.service
