#!/bin/sh
# Visit Counter: keeps a counter and a visit log in the app's data folder,
# which must survive updates, uninstall and reinstall. Runs as uid 1000.
set -eu
if [ ! -w /data ]; then
	echo "counter: the data folder /data is not writable by uid $(id -u); archy must own it for this user" >&2
	exit 1
fi
[ -f /data/schema ] || printf '1\n' >/data/schema
[ -f /data/created ] || date -u +%Y-%m-%dT%H:%M:%SZ >/data/created
[ -f /data/visits ] || printf '0\n' >/data/visits
echo "counter: version $(cat /etc/app-version), $(cat /data/visits) visits since $(cat /data/created), listening on :8080"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
httpd -f -p 8080 -h /app/www &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
