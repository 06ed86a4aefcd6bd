#!/bin/sh
# guestbook-web: the guestbook's page, talking to guestbook-db over the
# app's own network with the shared generated password.
set -eu
: "${DB_PASSWORD:?DB_PASSWORD must be set (archy generates it)}"
echo "guestbook-web: version $(cat /etc/app-version), database ${DB_HOST:-db}:${DB_PORT:-5432}"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
httpd -f -p 8080 -h /app/www &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
