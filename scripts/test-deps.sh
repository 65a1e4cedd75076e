#!/usr/bin/env bash
# Installs what is missing of the packages make test needs: scripts/deps.sh test.
exec "$(dirname "$0")/deps.sh" test "$@"
