#!/usr/bin/env bash
# Builds kubo (the `ipfs` binary) from the Go module proxy into $1 (default
# .cache/kubo/ipfs), for the transfer-vs-kubo benchmark figure. Kubo
# v0.43.1 replaces go-libp2p with a fork the proxy does not serve, so the
# replace is dropped and upstream go-libp2p v0.51.0 (what archy uses)
# taken instead. Takes a few minutes on two cores; run once.
set -euo pipefail
out=${1:-.cache/kubo/ipfs}
version=v0.43.1
if [ -x "$out" ] && "$out" version | grep -q "${version#v}"; then
	echo "$out"
	exit 0
fi
src=$(go mod download -json "github.com/ipfs/kubo@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/kubo"
chmod -R u+w "$work/kubo"
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(
	cd "$work/kubo"
	go mod edit -dropreplace github.com/libp2p/go-libp2p
	go get github.com/libp2p/go-libp2p@v0.51.0 >/dev/null
	go mod tidy >/dev/null
	go build -o "$out" ./cmd/ipfs
) >&2
echo "$out"
