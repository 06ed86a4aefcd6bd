#!/usr/bin/env bash
# examples/demo.sh (make demo): archy's story on one machine, told step by
# step. A developer's node publishes the hello app; an owner's node, which
# knows nothing but the developer's relay, finds the developer's node
# there, discovers the release, verifies it, installs it from the swarm
# (every block checked) on rootless Podman, and the app answers; then the
# owner uninstalls it with purge.
#
# Run it after `make test-env` (as root: the owner's node then runs as the
# Podman user, as a real node would), or as the owner of a rootless Podman
# socket with ARCHY_PODMAN_SOCKET set. It uses ports 7791-7794, 7458-7459,
# 4102-4103 and the hello app's 18080, and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ -t 1 ]; then
	say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
	say() { printf '\n==> %s\n' "$*"; }
fi
note() { printf '    %s\n' "$*"; }

[ -f .cache/test.env ] && . ./.cache/test.env
sock=${ARCHY_PODMAN_SOCKET:-}
user=${ARCHY_PODMAN_USER:-}
if [ -z "$sock" ]; then
	echo "demo: no Podman socket: run \`make test-env\` as root first, or set ARCHY_PODMAN_SOCKET" >&2
	exit 1
fi
for p in 7791 7792 7458 7459 4102 4103 18080; do
	if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
		echo "demo: port $p is in use; stop what holds it first" >&2
		exit 1
	fi
done

work=$(mktemp -d /tmp/archy-demo.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${ARCHY_DEMO_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

say "Building archy"
make -s build
cp bin/archy "$work/archy"
chmod 0755 "$work/archy"
archy="$work/archy"

# as_owner runs a command as the owner of the Podman socket (owner holds
# the prefix that switches to that user, when this runs as root).
owner=()
if [ "$(id -u)" -eq 0 ] && [ -n "$user" ]; then
	uid=$(id -u "$user") gid=$(id -g "$user") home=$(getent passwd "$user" | cut -d: -f6)
	owner=(setpriv --reuid="$uid" --regid="$gid" --init-groups env HOME="$home" USER="$user"
		XDG_RUNTIME_DIR="/run/user/$uid" PATH="$PATH")
fi
as_owner() { (cd / && "${owner[@]}" "$@"); }

waitfor() { # waitfor SECONDS WHAT COMMAND...
	local n=$1 what=$2
	shift 2
	for _ in $(seq 1 "$n"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	echo "demo: $what did not happen in $n s; the nodes' last log lines:" >&2
	tail -n 15 "$work"/*.log >&2 || true
	return 1
}

say "Starting the developer's node (no Podman: it only keeps and serves)"
"$archy" node run --data "$work/dev" --api 127.0.0.1:7791 --relay-listen 127.0.0.1:7458 \
	--listen /ip4/127.0.0.1/tcp/4102 --podman-socket off -v >"$work/dev.log" 2>&1 &
pids+=($!)
waitfor 30 "the developer's node" "$archy" node status --data "$work/dev"
note "its relay: ws://127.0.0.1:7458"

say "Starting the owner's node${user:+ as $user}: it knows only the developer's relay, no peers"
mkdir -p "$work/owner"
[ -n "$user" ] && [ "$(id -u)" -eq 0 ] && chown "$user" "$work/owner"
(cd / && exec "${owner[@]}" "$archy" node run --data "$work/owner" --api 127.0.0.1:7792 --relay-listen 127.0.0.1:7459 \
	--listen /ip4/127.0.0.1/tcp/4103 --relay ws://127.0.0.1:7458 --podman-socket "$sock" -v >"$work/owner.log" 2>&1) &
pids+=($!)
waitfor 30 "the owner's node" as_owner "$archy" node status --data "$work/owner"

say "The developer publishes hello: sign with the publisher's DID, hand image and manifest to their node, announce on the relay"
"$archy" nostr new --out "$work/nostr.key" >/dev/null
"$archy" app publish examples/apps/hello 2>&1 --key examples/keys/example-publisher.key --nostr-key "$work/nostr.key" \
	--relay ws://127.0.0.1:7458 --node local --data "$work/dev" --out "$work/hello.signed.json" | sed 's/^/    /'

say "The owner's node finds the developer's node through the relay (no bootstrap list)"
waitfor 30 "the peering" sh -c "'$archy' node peers --data '$work/dev' --json | grep -q '\"id\"'"
as_owner "$archy" node peers --data "$work/owner" | sed 's/^/    /'

say "... and discovers the release, verified (Nostr signature, DID binding, manifest signature, CID)"
waitfor 30 "the discovery" as_owner sh -c "'$archy' app list --discovered --data '$work/owner' --json 2>/dev/null | grep -q '\"id\": *\"hello\"'"
as_owner "$archy" app list --discovered --data "$work/owner" | sed 's/^/    /'
cid=$(as_owner "$archy" app list --discovered --data "$work/owner" --json | tr -d ' \n' | grep -o '"id":"hello"[^}]*' | grep -o 'bafkr4i[a-z2-7]*' | head -1)
note "release CID: $cid"

# So that the image must come from the swarm: a Podman that already holds
# it (checked by digest) would be used as it is.
as_owner podman --url "$sock" rmi --ignore localhost/archy-example/hello-web:1.0.0 >/dev/null 2>&1 || true
say "The owner installs it by CID: the image comes from the swarm, each block checked, then runs on rootless Podman"
as_owner "$archy" app install "$cid" --data "$work/owner" 2>&1 | sed 's/^/    /'

say "The app answers"
curl -fsS --max-time 10 http://127.0.0.1:18080/ | head -5 | sed 's/^/    /'

say "The owner uninstalls it with purge: nothing is left"
as_owner "$archy" app uninstall hello --purge --data "$work/owner" 2>&1 | sed 's/^/    /'
as_owner "$archy" app list --data "$work/owner" | sed 's/^/    /'
if curl -fsS --max-time 3 http://127.0.0.1:18080/ >/dev/null 2>&1; then
	echo "demo: the app still answers after the uninstall" >&2
	exit 1
fi
note "the app no longer answers"

say "Done. The nodes stop now; their logs were in $work (removed)."
