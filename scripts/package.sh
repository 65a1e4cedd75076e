#!/bin/bash
# package.sh builds the berth-agent, berth-cluster and berth-lb .deb and .rpm packages
# into dist/ from the binaries in bin/ (`make package` builds those first).
# The packager is nfpm's CLI at a pinned version, built into a scratch
# directory with `go install` so that nothing is installed system-wide and
# go.mod is untouched.
#
# Environment: VERSION (default: scripts/version.sh; used as it is, the same
# string the binaries were stamped with), BIN (directory holding the
# binaries, default bin), DIST (output directory, default dist), NFPM
# (command that runs nfpm).
set -euo pipefail

cd "$(dirname "$0")/.."

NFPM_VERSION=v2.45.0
DIST=${DIST:-dist}
BIN=${BIN:-bin}
VERSION=${VERSION:-$(scripts/version.sh)}
# Debian and RPM both accept it only in this shape (scripts/version.sh).
if ! [[ $VERSION =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
	echo "package.sh: version '$VERSION' is not a package version (digits first, then letters, digits, '.', '+', '~'; see scripts/version.sh)" >&2
	exit 1
fi
ARCH=${ARCH:-$(go env GOARCH)}
export VERSION ARCH

for bin in "$BIN/berth-agent" "$BIN/berth-logd" "$BIN/berth-cluster" "$BIN/berth-lb"; do
	if [[ ! -x $bin ]]; then
		echo "package.sh: $bin is missing; run 'make package'" >&2
		exit 1
	fi
done

# nfpm expands environment variables in some fields but not in contents'
# src, so the binaries' directory is substituted into a copy of the config.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -n ${NFPM:-} ]]; then
	read -r -a nfpm <<<"$NFPM"
else
	GOBIN=$work go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}"
	nfpm=("$work/nfpm")
fi
mkdir -p "$DIST"
for name in agent cluster lb; do
	sed "s|\${BIN}|${BIN}|g" "packaging/nfpm-${name}.yaml" >"$work/nfpm-${name}.yaml"
	for format in deb rpm; do
		"${nfpm[@]}" package --config "$work/nfpm-${name}.yaml" \
			--packager "$format" --target "$DIST/"
	done
done
echo "package.sh: version $VERSION in $DIST/:"
ls -1 "$DIST"
