#!/usr/bin/env bash
# Installs a Go command at a given version into GOBIN (or GOPATH/bin) unless
# the binary already there was built from exactly that version, and prints
# its path. Usage: install-peer.sh <package path> <version>
set -euo pipefail
pkg=$1
version=$2
bindir=$(go env GOBIN)
[ -n "$bindir" ] || bindir=$(go env GOPATH)/bin
bin=$bindir/$(basename "$pkg")
if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null |
	awk -v pkg="$pkg" -v v="$version" '$1=="path"{p=($2==pkg)} $1=="mod"&&p&&$3==v{ok=1} END{exit !ok}'; then
	echo "$bin"
	exit 0
fi
echo "installing $pkg@$version" >&2
# Build outside any module so the peer's own go.mod decides its dependencies.
(cd / && go install "$pkg@$version") >&2
echo "$bin"
