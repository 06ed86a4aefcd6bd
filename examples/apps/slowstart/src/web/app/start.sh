#!/bin/sh
# Slow Start: a service that needs a while to warm up (think of a node
# loading its index). Its page answers at once; /healthz only once it is ready.
set -eu
delay="${READY_AFTER:-8}"
rm -rf /tmp/www
cp -r /app/www /tmp/www
(
	sleep "$delay"
	printf 'ok\n' >/tmp/www/healthz
	echo "slowstart: ready after ${delay}s"
) &
echo "slowstart: version $(cat /etc/app-version) warming up for ${delay}s, listening on :8080"
# PID 1 gets no default signal handling: run the server as a child and stop
# it on SIGTERM, so that "podman stop" takes milliseconds, not its timeout.
httpd -f -p 8080 -h /tmp/www &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server"; exit 0' TERM INT
wait "$server"
