#!/bin/bash
# package.sh builds the berth-agent and berth-cluster .deb and .rpm packages
# into dist/ from the binaries in bin/ (`make package` builds those first).
# The packager is nfpm's CLI at a pinned version, built into a scratch
# directory with `go install` so that nothing is installed system-wide and
# go.mod is untouched.
#
# Environment: VERSION (default: git describe), BIN (directory holding the
# binaries, default bin), DIST (output directory, default dist), NFPM (command
# that runs nfpm).
set -euo pipefail

cd "$(dirname "$0")/.."

NFPM_VERSION=v2.45.0
DIST=${DIST:-dist}
BIN=${BIN:-bin}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

# Package versions must start with a digit and sort in build order:
#   v1.2.3            -> 1.2.3
#   v1.2.3-4-gabc1234 -> 1.2.3+4.gabc1234 (after 1.2.3)
#   abc1234[-dirty]   -> 0.0.0~git<commits>.abc1234[.dirty] (before any release;
#                        also when the hash happens to start with a digit)
pkg_version() {
	local v=${1#v}
	if [[ $v =~ ^[0-9]+\.[0-9]+ ]]; then
		v=${v/-/+}
		echo "${v//-/.}"
		return
	fi
	local count
	count=$(git rev-list --count HEAD 2>/dev/null || echo 0)
	v=${v//-/.}
	echo "0.0.0~git${count}.${v}"
}

PKG_VERSION=$(pkg_version "$VERSION")
ARCH=${ARCH:-$(go env GOARCH)}
SOURCE_VERSION=$VERSION
export VERSION=$PKG_VERSION ARCH

for bin in "$BIN/berth-agent" "$BIN/berth-cluster"; do
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
for name in agent cluster; do
	sed "s|\${BIN}|${BIN}|g" "packaging/nfpm-${name}.yaml" >"$work/nfpm-${name}.yaml"
	for format in deb rpm; do
		"${nfpm[@]}" package --config "$work/nfpm-${name}.yaml" \
			--packager "$format" --target "$DIST/"
	done
done
echo "package.sh: version $PKG_VERSION (from $SOURCE_VERSION) in $DIST/:"
ls -1 "$DIST"
