#!/bin/sh
# Hello Web: render the page with this image's version, then serve it.
set -eu
port="${PORT:-8080}"
version="$(cat /etc/app-version)"
mkdir -p /tmp/www
sed -e "s|@VERSION@|$version|g" -e "s|@GREETING@|${GREETING:-Hello}|g" \
	/app/www/index.html >/tmp/www/index.html
cp /app/www/healthz /tmp/www/healthz
echo "hello: version $version listening on :$port"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
httpd -f -p "$port" -h /tmp/www &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
