#!/bin/bash
# prepare.sh stages the lab on the host, in lab/.state (which Vagrant copies
# to every VM as /berth-lab):
#   dist/berth-*.deb        the newest packages from `make package`
#   ca.crt, ca.key          a private CA for the lab
#   endpoint.crt/.key       the endpoint's TLS certificate (IP SAN)
#   cluster/                berth-cluster's data directory, holding
#                           an admin and an agent access key
#   cluster.toml            the endpoint's configuration
#   admin.env               variables for the aws CLI on the host
#   agent.env               the agents' ecs.config credentials and endpoint
# It uses the berth-cluster binary that `make package` built. Run it again
# with --force to start over (existing lab VMs then need `vagrant provision`).
set -euo pipefail

lab=$(cd "$(dirname "$0")" && pwd)
state=$lab/.state
cluster_bin=${BERTH_CLUSTER_BIN:-$lab/../bin/package/berth-cluster}
net=${BERTH_LAB_NET:-192.168.56}
endpoint_ip=$net.10
port=${BERTH_LAB_PORT:-8443}
region=${BERTH_LAB_REGION:-us-east-1}
cluster=${BERTH_LAB_CLUSTER:-lab}

if [[ ${1:-} == --force ]]; then
	rm -rf "$state"
elif [[ -e $state ]]; then
	echo "prepare.sh: $state exists; use --force to regenerate the keys" >&2
	exit 1
fi
if [[ ! -x $cluster_bin ]]; then
	echo "prepare.sh: $cluster_bin not found: run 'make package' first" >&2
	exit 1
fi
command -v openssl >/dev/null || {
	echo "prepare.sh: openssl is needed (apt-get install openssl)" >&2
	exit 1
}

umask 077
mkdir -p "$state/cluster" "$state/dist"

for pkg in berth-agent berth-cluster; do
	deb=$(find "$lab/../dist" -name "${pkg}_*_amd64.deb" | sort -V | tail -n 1)
	if [[ -z $deb ]]; then
		echo "prepare.sh: no $pkg .deb in dist/: run 'make package' first" >&2
		exit 1
	fi
	install -m 0644 "$deb" "$state/dist/$pkg.deb"
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=Berth lab CA" -keyout "$state/ca.key" -out "$state/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=berth-endpoint" -keyout "$state/endpoint.key" -out "$state/endpoint.csr" 2>/dev/null
openssl x509 -req -in "$state/endpoint.csr" -CA "$state/ca.crt" -CAkey "$state/ca.key" \
	-CAcreateserial -days 30 -out "$state/endpoint.crt" \
	-extfile <(printf 'subjectAltName=IP:%s,DNS:berth-endpoint\nextendedKeyUsage=serverAuth\n' "$endpoint_ip") 2>/dev/null
rm -f "$state/endpoint.csr" "$state/ca.srl"

# Keys are created straight in the data directory the endpoint VM will use.
create_key() {
	"$cluster_bin" keys create --role "$1" --data-dir "$state/cluster" 2>/dev/null
}
admin=$(create_key admin)
agent=$(create_key agent)

{
	echo "# source lab/.state/admin.env: the aws CLI then talks to the lab endpoint"
	while read -r line; do echo "export $line"; done <<<"$admin"
	echo "export AWS_REGION=$region"
	echo "export AWS_ENDPOINT_URL_ECS=https://$endpoint_ip:$port"
	echo "export AWS_CA_BUNDLE=$state/ca.crt"
	echo "export BERTH_LAB_CLUSTER=$cluster"
} >"$state/admin.env"

{
	echo "ECS_CLUSTER=$cluster"
	echo "ECS_BACKEND_HOST=https://$endpoint_ip:$port"
	echo "AWS_REGION=$region"
	echo "$agent"
} >"$state/agent.env"

cat >"$state/cluster.toml" <<EOT
# Written by lab/prepare.sh; lab/provision/endpoint.sh installs it.
listen = ":$port"
tls_cert = "/etc/berth/tls/cluster.crt"
tls_key = "/etc/berth/tls/cluster.key"
region = "$region"
account_id = "000000000000"
data_dir = "/var/lib/berth-cluster"
poll_endpoint = "https://$endpoint_ip:$port"
EOT

echo "prepare.sh: lab keys in $state; next: cd lab && vagrant up endpoint"
