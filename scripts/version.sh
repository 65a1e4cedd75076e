#!/bin/sh
# version.sh prints Berth's version, the one string that the binaries
# (berth-agent --version, berth-cluster --version), the ACS and TCS
# handshakes' agentVersion, the registration's versionInfo, /v1/metadata and
# the .deb and .rpm packages carry. Its one source is the annotated git tags
# (docs/install.md, "Releases"):
#
#   at tag v1.2.0                  1.2.0
#   3 commits after v1.2.0         1.2.0+3.gabc1234
#   at tag v1.3.0-dev              1.3.0~dev
#   5 commits after v1.3.0-dev     1.3.0~dev.5.gabc1234
#   uncommitted changes            the above with ".dirty" (and ".0.gHASH" or "+0.gHASH" at a tag)
#   no tag reachable               0.0.0~git.<commits>.gabc1234
#
# Every form is a valid Debian and RPM version that sorts in build order:
# "~" sorts before the release it leads to, "+" after it. Git tags cannot
# hold "~", so a pre-release tag's first "-" stands for it.
set -eu
cd "$(dirname "$0")/.."

if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "version.sh: not a git checkout; no version to derive" >&2
	echo "0.0.0~unknown"
	exit 0
fi
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=.dirty
fi
hash=$(git rev-parse --short=7 HEAD)

if ! desc=$(git describe --tags --match 'v[0-9]*' --long --abbrev=7 2>/dev/null); then
	echo "0.0.0~git.$(git rev-list --count HEAD).g${hash}${dirty}"
	exit 0
fi
# desc is TAG-COUNT-gHASH, where TAG may itself hold "-".
count=${desc%-g*}
count=${count##*-}
tag=${desc%-*-g*}
v=${tag#v}
case $v in
*-*) base=${v%%-*} pre=${v#*-} ;;
*) base=$v pre= ;;
esac

case $base in
[0-9]*.[0-9]*) ;;
*)
	echo "version.sh: tag $tag is not vMAJOR.MINOR.PATCH[-PRERELEASE]" >&2
	exit 1
	;;
esac
if [ -n "$pre" ]; then
	v="${base}~$(printf %s "$pre" | tr -- - .)"
	sep=.
else
	v=$base
	sep=+
fi
if [ "$count" != 0 ] || [ -n "$dirty" ]; then
	v="${v}${sep}${count}.g${hash}${dirty}"
fi
echo "$v"
