#!/bin/sh
# Link Page: a start page for the node that links to the Hello Web app it
# requires. archy starts it only once that app runs and is healthy.
set -eu
version="$(cat /etc/app-version)"
mkdir -p /tmp/www
sed -e "s|@VERSION@|$version|g" -e "s|@HELLO_URL@|${HELLO_URL:-http://127.0.0.1:18080/}|g" \
	/app/www/index.html >/tmp/www/index.html
printf 'ok\n' >/tmp/www/healthz
echo "linkpage: version $version listening on :8080"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
httpd -f -p 8080 -h /tmp/www &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
