#!/bin/sh
# guestbook-db: a tiny line-protocol database. Each TCP connection sends one
# line "AUTH <password> <COMMAND> [ARGS]" and gets the answer back.
set -eu
: "${DB_PASSWORD:?DB_PASSWORD must be set (archy generates it)}"
mkdir -p /data
touch /data/entries.txt
echo "guestbook-db: version $(cat /etc/app-version), $(wc -l </data/entries.txt) entries, listening on :5432"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
nc -ll -p 5432 -e /app/session.sh &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
